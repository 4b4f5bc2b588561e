"""Fixtures the engine tests share."""
from __future__ import annotations

import pytest

from shared.adapters import storage
from shared.adapters.status_store import Store


@pytest.fixture
def store(azurite) -> Store:
    """The status store on an emptied table (inventories of Dapr components start empty)."""
    env = {"AzureWebJobsStorage": azurite.connection_string}
    table = storage.table(env=env)
    for entity in list(table.list_entities()):
        table.delete_entity(entity["PartitionKey"], entity["RowKey"])
    return Store(env=env)
