// Deployed once per target resource group (main.bicep: scope: resourceGroup(name)). The only
// write access Driftless gets to Container Apps, and only in this group; plus read access to the
// group's Azure Monitor metrics, which progressive delivery's analysis reads (docs/progressive-delivery.md).

@description('Principal id of the Function App\'s user-assigned identity.')
param principalId string

// Container Apps Contributor: list, create, merge-patch and delete the Container Apps of this
// group and read/join its managed environments. Scoped to the group, never the subscription.
var containerAppsContributorRoleId = '358470bc-b998-42bd-ab17-a7e34c199c0f'

// Monitoring Reader: read the request metrics of the group's Container Apps (Microsoft.Insights/
// metrics/read is not part of Container Apps Contributor). Read-only, scoped to the group.
var monitoringReaderRoleId = '43d0d8ad-25c7-4714-9337-8ba259a9fe05'

// Container Apps Contributor (358470bc-b998-42bd-ab17-a7e34c199c0f) on this resource group.
resource containerAppsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, containerAppsContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', containerAppsContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Monitoring Reader (43d0d8ad-25c7-4714-9337-8ba259a9fe05) on this resource group.
resource monitoringReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, monitoringReaderRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringReaderRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
