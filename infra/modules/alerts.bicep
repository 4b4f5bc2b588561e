// Alerts of a Driftless deployment, all to one e-mail action group:
// - a message parked in any -poison queue (reconcile jobs, phase events, image updates);
// - reconcile failures above a threshold;
// - failed Key Vault SecretGet calls (the app cannot read its secrets).
// They are log alerts over Application Insights and the vault's audit logs; the queries use
// the telemetry contract in infra/README.md.

param location string
param tags object
param namePrefix string

@description('E-mail address the alerts go to.')
param alertEmail string

param appInsightsId string

@description('Log Analytics workspace holding the Key Vault audit logs.')
param workspaceId string

@description('Failed reconciles within 15 minutes that raise an alert.')
param reconcileFailureThreshold int

// Why a log query and not the storage metric: Azure Storage's QueueMessageCount is one number
// for the whole account (no per-queue dimension) and is refreshed about hourly, so it can
// neither tell a poison queue from reconcile-jobs nor alert within minutes. Every parking is
// logged instead: the Functions host logs "Message has reached MaxDequeueCount of 5. Moving
// message to queue '<name>-poison'", and the app's own moves (a malformed job or phase event, a
// phase event out of attempts) log a line with the word "parked".
var poisonQuery = '''
traces
| where (message has "MaxDequeueCount" and message contains "-poison") or message has "parked"
| project timestamp, severityLevel, message, operation_Name
'''

// One row per app whose apply failed (the `apply app` span, exported to `dependencies`) and per
// worker invocation that raised (Git, ARM or Key Vault unreachable; the host retries it).
var failureQuery = '''
union
    (dependencies
    | where name == "apply app" and tostring(customDimensions.action) == "failed"
    | project timestamp, target = tostring(customDimensions.target), app = tostring(customDimensions.app), reason = tostring(customDimensions.reason)),
    (exceptions
    | where operation_Name in ("reconcile_worker", "push_worker")
    | project timestamp, target = tostring(customDimensions.target), app = "", reason = outerMessage)
'''

// SecretGet refused (403), throttled (429) or failed (5xx). 401 is left out on purpose: the SDK's
// first, unauthenticated request is always answered 401 with the auth challenge. 404 is left
// out too: an optional secret that was never set is a normal state for the app.
var keyVaultQuery = '''
AzureDiagnostics
| where ResourceProvider == "MICROSOFT.KEYVAULT" and OperationName == "SecretGet"
| extend status = toint(column_ifexists("httpStatusCode_d", 0))
| where status == 403 or status == 429 or status >= 500
| project TimeGenerated, Resource, status, ResultSignature, CallerIPAddress
'''

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${namePrefix}-oncall'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'driftless'
    enabled: true
    emailReceivers: [
      {
        name: 'driftless-oncall'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-poison-message'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Driftless: a message was parked in a poison queue'
    description: 'A reconcile job or phase event failed maxDequeueCount times or was malformed; it waits in a -poison queue with its body intact.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    // The tables fill only once the app logs; validate at evaluation time, not at deployment.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: poisonQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource failureAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-reconcile-failures'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Driftless: reconcile failures'
    description: 'Apps reported failed, or worker invocations that raised, within 15 minutes reached the threshold.'
    severity: 2
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: failureQuery
          timeAggregation: 'Count'
          operator: 'GreaterThanOrEqual'
          threshold: reconcileFailureThreshold
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}

resource keyVaultAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${namePrefix}-keyvault-access'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Driftless: Key Vault secret reads fail'
    description: 'SecretGet on the Driftless vault was refused, throttled or failed: webhooks answer 503 and jobs are retried until it recovers.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: keyVaultQuery
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}
