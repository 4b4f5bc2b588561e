// Deployed once per target resource group (main.bicep: scope: resourceGroup(name)). The only
// write access Driftless gets to Container Apps, and only in this group.

@description('Principal id of the Function App\'s user-assigned identity.')
param principalId string

// Container Apps Contributor: list, create, merge-patch and delete the Container Apps of this
// group and read/join its managed environments. Scoped to the group, never the subscription.
var containerAppsContributorRoleId = '358470bc-b998-42bd-ab17-a7e34c199c0f'

// Container Apps Contributor (358470bc-b998-42bd-ab17-a7e34c199c0f) on this resource group.
resource containerAppsContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, containerAppsContributorRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', containerAppsContributorRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
