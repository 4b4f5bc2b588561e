// Azure Monitor workbook over the app's Application Insights: passes per Target, outcomes per
// app, drift healed, failures with reasons, webhook-to-applied latency. The workbook itself is
// workbook.json (edit it in the portal's Advanced Editor and paste it back); its queries use
// the telemetry contract in infra/README.md.

param location string
param tags object
param displayName string

@description('Makes the workbook id (a GUID) stable per deployment.')
param seed string

param appInsightsId string

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'driftless-workbook', seed)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: replace(loadTextContent('workbook.json'), '__APPINSIGHTS_ID__', appInsightsId)
  }
}

output id string = workbook.id
