// Key Vault for Driftless's secrets (webhook HMAC, Git token, GitHub App key, ...). RBAC
// authorization, soft delete and purge protection; the template creates no secret values:
// operators set them with `az keyvault secret set` (see infra/README.md). Audit logs go to
// Log Analytics, where an alert watches failed SecretGet calls.

param location string
param tags object

@minLength(3)
@maxLength(24)
param name string

@description('Principal id of the Function App\'s user-assigned identity.')
param principalId string

@description('Log Analytics workspace receiving the vault\'s audit logs.')
param workspaceId string

// Key Vault Secrets User: read secret values (the app's SecretClient.get_secret), nothing else.
// The vault holds only Driftless's secrets, so the vault is the narrowest useful scope.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption without VNet integration has no fixed outbound addresses to allow; reads need an Entra token and Key Vault Secrets User.
  // checkov:skip=CKV_AZURE_189: same as CKV_AZURE_109; the vault answers only authenticated, RBAC-authorized requests.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource auditLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'driftless-audit'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'AuditEvent'
        enabled: true
      }
    ]
  }
}

// Key Vault Secrets User (4633458b-17de-408a-b874-0445c86b69e6) on this vault only.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsUserRoleId)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
