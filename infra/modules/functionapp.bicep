// The Function App on the Flex Consumption plan (FC1, Linux, Python 3.11). It runs as the
// user-assigned identity only: the deployment package, host storage, Key Vault, Application
// Insights and ARM are all reached with that identity's Entra tokens. FTP and basic
// (publishing-profile) credentials are disabled; azd and `func` deploy with Entra ID.

param location string
param tags object
param name string
param planName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('URL of the blob container holding the deployment package.')
param deploymentContainerUrl string

@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int

@minValue(40)
@maxValue(1000)
param maximumInstanceCount int

@description('App settings as name -> value.')
param appSettings object

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Flex Consumption zone redundancy exists only in some regions; a zone outage delays reconciles (Git keeps the desired state, the timer catches up) and loses nothing.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: GitHub push webhooks and Flux/Argo phase callbacks arrive from the internet; the webhook is HMAC-verified and every other route needs a function key.
  // checkov:skip=CKV_AZURE_17: GitHub cannot present client certificates; webhooks are authenticated by their HMAC signature, the other routes by function keys.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per event; there is no fixed instance count to set, and queued jobs wait safely until an instance runs them.
  // checkov:skip=CKV_AZURE_213: Flex Consumption does not support the App Service health check; GET /api/health serves external probes instead.
  name: name
  location: location
  // azd deploys the `driftless` service of azure.yaml to the resource carrying this tag.
  tags: union(tags, {
    'azd-service-name': 'driftless'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [for setting in items(appSettings): {
        name: setting.key
        value: setting.value
      }]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output defaultHostName string = site.properties.defaultHostName
