// Deployed once per AKS target (main.bicep: scope: resourceGroup(cluster.resourceGroup)).
// Both roles are assigned on the named cluster only.

@description('Name of an existing AKS cluster in this resource group (Entra ID + Azure RBAC enabled).')
param clusterName string

@description('Principal id of the Function App\'s user-assigned identity.')
param principalId string

// Azure Kubernetes Service Cluster User Role: fetch the cluster's user kubeconfig
// (listClusterUserCredential); it grants no Kubernetes permissions by itself.
var aksClusterUserRoleId = '4abbcc35-e782-43d8-92c5-2d3f1bd2253f'
// Azure Kubernetes Service RBAC Writer: read/write most namespaced objects (Deployments,
// Services, ConfigMaps, ...) through Azure RBAC for Kubernetes; Namespaces read-only; no Roles,
// RoleBindings, quotas, CRDs or custom resources. Driftless prunes only kinds this role may list
// and delete; an object of another kind fails alone, naming the missing data action. To manage
// more, assign a custom role or RBAC Cluster Admin yourself (docs/aks.md).
var aksRbacWriterRoleId = 'a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb'

resource cluster 'Microsoft.ContainerService/managedClusters@2024-02-01' existing = {
  name: clusterName
}

// Azure Kubernetes Service Cluster User Role (4abbcc35-e782-43d8-92c5-2d3f1bd2253f) on the cluster.
resource clusterUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, principalId, aksClusterUserRoleId)
  scope: cluster
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksClusterUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Azure Kubernetes Service RBAC Writer (a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb) on the cluster.
resource rbacWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(cluster.id, principalId, aksRbacWriterRoleId)
  scope: cluster
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', aksRbacWriterRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
