// Driftless: serverless GitOps for Azure Container Apps.
// One resource group holds the Function App (Flex Consumption), its storage account (queues,
// status table, deployment package), Key Vault, Log Analytics + Application Insights, alerts
// and the workbook. Driftless runs as one user-assigned identity that gets data-plane roles on
// those resources and Container Apps Contributor only on the target resource groups.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(40)
@description('Environment name (azd: AZURE_ENV_NAME); names and tags the resources.')
param environmentName string

@description('Region of every resource (Flex Consumption must be available there).')
param location string = resourceGroup().location

@description('Extra tags for every resource.')
param tags object = {}

// ----- Function App sizing (Flex Consumption) -----

@allowed([
  512
  2048
  4096
])
@description('Memory of each instance in MB (Flex Consumption instance sizes).')
param instanceMemoryMB int = 2048

@minValue(40)
@maxValue(1000)
@description('Upper bound of instances the app scales out to.')
param maximumInstanceCount int = 40

// ----- What Driftless reconciles (app settings) -----

@minLength(1)
@description('Git repository holding the manifests (DRIFTLESS_REPO_URL).')
param repoUrl string

@description('Branch to follow (DRIFTLESS_BRANCH).')
param branch string = 'main'

@description('Path of the default Target in the repository (DRIFTLESS_PATH).')
param gitopsPath string = 'apps'

@description('Folder of kind: Target manifests (DRIFTLESS_TARGETS_PATH).')
param targetsPath string = 'targets'

@description('Resource group of the default Target (DRIFTLESS_RESOURCE_GROUP); empty when the repository declares Targets.')
param defaultTargetResourceGroup string = ''

@description('Container Apps environment of the default Target (DRIFTLESS_ACA_ENVIRONMENT): a name in its resource group or a full id.')
param defaultTargetEnvironment string = ''

@description('Prune for the default Target (DRIFTLESS_PRUNE).')
param prune bool = false

@description('Apps the default Target never deletes (DRIFTLESS_PROTECTED_APPS).')
param protectedApps array = []

@description('Let the default Target prune all or most owned apps (DRIFTLESS_ALLOW_EMPTY).')
param allowEmpty bool = false

@minLength(1)
@description('Owner tag value of this Driftless instance (DRIFTLESS_INSTANCE).')
param instance string = 'driftless'

@description('NCRONTAB schedule of the drift-healing timer (DRIFTLESS_SCHEDULE).')
param schedule string = '0 */5 * * * *'

@minValue(1)
@description('Parallel writes per pass (DRIFTLESS_CONCURRENCY).')
param concurrency int = 16

@minValue(1)
@description('Seconds one create/update/delete may take (DRIFTLESS_APPLY_TIMEOUT).')
param applyTimeoutSeconds int = 600

@minValue(0)
@description('Seconds Azure Monitor may take to make a minute of request metrics readable; rollout analysis reads the interval that ended this long ago (DRIFTLESS_METRICS_DELAY).')
param metricsDelaySeconds int = 180

@minValue(1)
@description('Seconds between long-running-operation polls (DRIFTLESS_ARM_POLL_INTERVAL).')
param armPollIntervalSeconds int = 5

@description('First re-apply delay of an unhealthy app in seconds (DRIFTLESS_REAPPLY_BACKOFF).')
param reapplyBackoffSeconds int = 60

@description('Seconds a secret value is cached (DRIFTLESS_SECRET_TTL).')
param secretTtlSeconds int = 300

@description('User name sent with a Git token (DRIFTLESS_GIT_USERNAME).')
param gitUsername string = 'x-access-token'

@description('GitHub App id (DRIFTLESS_GITHUB_APP_ID); empty when a token is used.')
param githubAppId string = ''

@description('GitHub App installation id (DRIFTLESS_GITHUB_APP_INSTALLATION_ID).')
param githubAppInstallationId string = ''

@description('GitHub (Enterprise) API URL (DRIFTLESS_GITHUB_API_URL).')
param githubApiUrl string = 'https://api.github.com'

@description('NCRONTAB schedule of the image-update timer (DRIFTLESS_IMAGE_SCHEDULE).')
param imageSchedule string = '0 */30 * * * *'

@description('GitHub owner/name the image updater commits to when it is not the GitOps repository (DRIFTLESS_MANIFESTS_GITHUB_REPO).')
param manifestsGithubRepo string = ''

@description('https://dev.azure.com/{org}/{project}/_git/{repo} of the manifests repository on Azure Repos when repoUrl is not that URL: plan previews of its pull requests go there (DRIFTLESS_MANIFESTS_AZURE_REPO).')
param manifestsAzureRepo string = ''

// ----- Key Vault secret NAMES (values are set with az keyvault secret set, never here) -----

param webhookSecretName string = 'driftless-webhook-secret'
param gitTokenName string = 'driftless-git-token'
param githubAppKeyName string = 'driftless-github-app-private-key'
param azdoTokenName string = 'driftless-azdo-token'
@description('Secret holding the password of the Azure DevOps service hooks for pull request previews (POST /api/azure-devops/webhook).')
param azdoHookSecretName string = 'driftless-azdo-hook-secret'
param fluxHmacName string = 'driftless-flux-hmac'
param phaseKeyName string = 'driftless-phase-key'
@description('Secret holding the Slack-compatible webhook URL for image-update notifications (the URL embeds a credential); absent: no notifications.')
param imageNotifyUrlName string = 'driftless-image-notify-url'

@description('Named CI-feedback configs (DRIFTLESS_FEEDBACK, see the main README); tokens are referenced by Key Vault secret name only. Empty: no feedback.')
param feedback object = {}

@description('Also post a pull request\'s plan as one PR comment, updated in place (DRIFTLESS_PREVIEW_COMMENT); the check run driftless/plan is always posted.')
param previewComment bool = true

// ----- Where Driftless may write -----

@description('Resource groups (this subscription) whose Container Apps Driftless manages; each gets Container Apps Contributor. The default Target group is added automatically.')
param targetResourceGroups array = []

@description('AKS clusters Driftless deploys to, as [{resourceGroup, name}] in this subscription.')
param aksClusters array = []

// ----- Monitoring -----

@minLength(3)
@description('E-mail address the alerts go to.')
param alertEmail string

@minValue(1)
@description('Failed reconciles (app outcomes "failed" plus worker exceptions) in 15 minutes that raise an alert.')
param reconcileFailureThreshold int = 3

@minValue(30)
@maxValue(730)
@description('Days Log Analytics keeps data.')
param logRetentionDays int = 30

// Names: one stable token per subscription, group and environment.
var token = uniqueString(subscription().id, resourceGroup().id, environmentName)
var allTags = union(tags, {
  'azd-env-name': environmentName
  application: 'driftless'
})

// The queue and table names the code uses (shared/core/queues.py: RECONCILE_QUEUE, PUSH_QUEUE, PHASE_QUEUE for
// the Flux/Argo phase callbacks, IMAGE_QUEUE, PREVIEW_QUEUE, ROLLOUT_QUEUE, POISON_SUFFIX; shared/adapters/storage.py: TABLE). Each work queue has its -poison twin, where the Functions host parks a message
// after host.json's maxDequeueCount.
var queueNames = [
  'reconcile-jobs'
  'reconcile-jobs-poison'
  'reconcile-pushes'
  'reconcile-pushes-poison'
  'phase-events'
  'phase-events-poison'
  'image-updates'
  'image-updates-poison'
  'plan-previews'
  'plan-previews-poison'
  'rollout-steps'
  'rollout-steps-poison'
]
var statusTable = 'driftless'
var deploymentContainer = 'app-package'

var containerAppsGroups = union(targetResourceGroups, empty(defaultTargetResourceGroup) ? [] : [defaultTargetResourceGroup])

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-driftless-${token}'
  location: location
  tags: allTags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'driftless-monitoring'
  params: {
    location: location
    tags: allTags
    workspaceName: 'log-driftless-${token}'
    appInsightsName: 'appi-driftless-${token}'
    retentionInDays: logRetentionDays
    principalId: identity.properties.principalId
  }
}

module storage 'modules/storage.bicep' = {
  name: 'driftless-storage'
  params: {
    location: location
    tags: allTags
    name: 'stdriftless${token}'
    deploymentContainerName: deploymentContainer
    queueNames: queueNames
    tableName: statusTable
    principalId: identity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'driftless-keyvault'
  params: {
    location: location
    tags: allTags
    name: 'kv-driftless-${substring(token, 0, 8)}'
    principalId: identity.properties.principalId
    workspaceId: monitoring.outputs.workspaceId
  }
}

// Every setting the code reads in Azure (shared/config/settings.py, shared/adapters/storage.py); tests/test_infra.py
// derives the list from the code and fails when one is missing here. Never the dev-only
// DRIFTLESS_ARM_ENDPOINT or DRIFTLESS_KUBECONFIG, and never a secret value.
var appSettings = {
  // Identity-based host storage: no connection string exists, shared keys are off.
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.properties.clientId
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__queueServiceUri: storage.outputs.queueEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  // Telemetry is ingested with the identity's Entra token (local auth is disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  // DefaultAzureCredential picks the user-assigned identity.
  AZURE_CLIENT_ID: identity.properties.clientId
  AZURE_SUBSCRIPTION_ID: subscription().subscriptionId
  DRIFTLESS_REPO_URL: repoUrl
  DRIFTLESS_BRANCH: branch
  DRIFTLESS_PATH: gitopsPath
  DRIFTLESS_TARGETS_PATH: targetsPath
  DRIFTLESS_RESOURCE_GROUP: defaultTargetResourceGroup
  DRIFTLESS_ACA_ENVIRONMENT: defaultTargetEnvironment
  DRIFTLESS_PRUNE: prune ? 'true' : 'false'
  DRIFTLESS_PROTECTED_APPS: join(protectedApps, ',')
  DRIFTLESS_ALLOW_EMPTY: allowEmpty ? 'true' : 'false'
  DRIFTLESS_INSTANCE: instance
  DRIFTLESS_SCHEDULE: schedule
  DRIFTLESS_CONCURRENCY: string(concurrency)
  DRIFTLESS_APPLY_TIMEOUT: string(applyTimeoutSeconds)
  DRIFTLESS_ARM_POLL_INTERVAL: string(armPollIntervalSeconds)
  DRIFTLESS_METRICS_DELAY: string(metricsDelaySeconds)
  DRIFTLESS_REAPPLY_BACKOFF: string(reapplyBackoffSeconds)
  DRIFTLESS_GIT_USERNAME: gitUsername
  DRIFTLESS_GITHUB_APP_ID: githubAppId
  DRIFTLESS_GITHUB_APP_INSTALLATION_ID: githubAppInstallationId
  DRIFTLESS_GITHUB_API_URL: githubApiUrl
  DRIFTLESS_FEEDBACK: empty(feedback) ? '' : string(feedback)
  DRIFTLESS_PREVIEW_COMMENT: previewComment ? 'true' : 'false'
  DRIFTLESS_IMAGE_SCHEDULE: imageSchedule
  DRIFTLESS_MANIFESTS_GITHUB_REPO: manifestsGithubRepo
  DRIFTLESS_MANIFESTS_AZURE_REPO: manifestsAzureRepo
  // Secrets: the vault and the secret names; the values live only in Key Vault.
  DRIFTLESS_KEYVAULT_URL: keyVault.outputs.uri
  DRIFTLESS_SECRET_TTL: string(secretTtlSeconds)
  DRIFTLESS_WEBHOOK_SECRET_NAME: webhookSecretName
  DRIFTLESS_GIT_TOKEN_NAME: gitTokenName
  DRIFTLESS_GITHUB_APP_KEY_NAME: githubAppKeyName
  DRIFTLESS_AZDO_TOKEN_NAME: azdoTokenName
  DRIFTLESS_AZDO_HOOK_SECRET_NAME: azdoHookSecretName
  DRIFTLESS_FLUX_HMAC_NAME: fluxHmacName
  DRIFTLESS_PHASE_KEY_NAME: phaseKeyName
  DRIFTLESS_IMAGE_NOTIFY_URL_NAME: imageNotifyUrlName
}

// Depends on the storage, Key Vault and monitoring modules (their outputs), so the identity's
// data-plane roles exist before the host starts.
module functionApp 'modules/functionapp.bicep' = {
  name: 'driftless-functionapp'
  params: {
    location: location
    tags: allTags
    name: 'func-driftless-${token}'
    planName: 'plan-driftless-${token}'
    identityId: identity.id
    deploymentContainerUrl: '${storage.outputs.blobEndpoint}${deploymentContainer}'
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appSettings: appSettings
  }
}

// Container Apps Contributor on each target resource group only, never on the subscription.
module containerAppsAccess 'modules/target-group-access.bicep' = [for group in containerAppsGroups: {
  name: 'driftless-aca-${uniqueString(group)}'
  scope: resourceGroup(group)
  params: {
    principalId: identity.properties.principalId
  }
}]

// Cluster user credentials and namespace-level writes on each named AKS cluster only.
module aksAccess 'modules/aks-access.bicep' = [for cluster in aksClusters: {
  name: 'driftless-aks-${uniqueString(cluster.resourceGroup, cluster.name)}'
  scope: resourceGroup(cluster.resourceGroup)
  params: {
    clusterName: cluster.name
    principalId: identity.properties.principalId
  }
}]

module alerts 'modules/alerts.bicep' = {
  name: 'driftless-alerts'
  params: {
    location: location
    tags: allTags
    namePrefix: 'driftless-${token}'
    alertEmail: alertEmail
    appInsightsId: monitoring.outputs.appInsightsId
    workspaceId: monitoring.outputs.workspaceId
    reconcileFailureThreshold: reconcileFailureThreshold
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'driftless-workbook'
  params: {
    location: location
    tags: allTags
    displayName: 'Driftless (${environmentName})'
    seed: token
    appInsightsId: monitoring.outputs.appInsightsId
  }
}

output FUNCTION_APP_NAME string = functionApp.outputs.name
output WEBHOOK_URL string = 'https://${functionApp.outputs.defaultHostName}/api/github/webhook'
output PHASE_CALLBACK_URL string = 'https://${functionApp.outputs.defaultHostName}/api/gitopsphase'
output KEY_VAULT_NAME string = keyVault.outputs.name
output KEY_VAULT_URL string = keyVault.outputs.uri
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_CLIENT_ID string = identity.properties.clientId
output PRINCIPAL_ID string = identity.properties.principalId
