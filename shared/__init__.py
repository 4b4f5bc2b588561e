"""Driftless: serverless GitOps for Azure Container Apps. All logic lives in this package."""

__version__ = "0.1.0"
