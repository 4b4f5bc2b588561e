"""Storage clients on the Function App's own account (`AzureWebJobsStorage`), built lazily and reused.

A connection string (Azurite locally, `UseDevelopmentStorage=true` included) or the
identity-based settings `AzureWebJobsStorage__accountName` / `__queueServiceUri` /
`__tableServiceUri` with `__clientId` (user-assigned managed identity) in Azure.
Queue messages are base64, as the Functions queue trigger expects.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Mapping

from shared.core.queues import POISON_SUFFIX

TABLE = "driftless"
DEVELOPMENT = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
               "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
               "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;QueueEndpoint=http://127.0.0.1:10001/devstoreaccount1;"
               "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;")

_clients: dict[tuple[str, str, str], Any] = {}
_lock = threading.Lock()


class StorageNotConfigured(RuntimeError):
    pass


def _connection(env: Mapping[str, str]) -> tuple[str | None, dict[str, str]]:
    value = env.get("AzureWebJobsStorage", "").strip()
    if value:
        return (DEVELOPMENT if value == "UseDevelopmentStorage=true" else value), {}
    prefix = "AzureWebJobsStorage__"
    identity = {k[len(prefix):]: v for k, v in env.items() if k.startswith(prefix) and v}
    if not identity:
        raise StorageNotConfigured("AzureWebJobsStorage (or AzureWebJobsStorage__accountName) is not set")
    return None, identity


def configured(env: Mapping[str, str] | None = None) -> bool:
    """True when AzureWebJobsStorage (connection string or identity-based) is set."""
    try:
        _connection(os.environ if env is None else env)
        return True
    except StorageNotConfigured:
        return False


def _credential(identity: dict[str, str]):
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=identity.get("clientId"))


def queue(name: str, env: Mapping[str, str] | None = None):
    """A QueueClient for `name` that writes base64 (TextBase64EncodePolicy); the queue is created if missing."""
    env = os.environ if env is None else env
    connection, identity = _connection(env)
    key = ("queue", name, connection or repr(sorted(identity.items())))
    with _lock:
        if key not in _clients:
            from azure.core.exceptions import ResourceExistsError
            from azure.storage.queue import (
                ExponentialRetry,
                QueueClient,
                TextBase64DecodePolicy,
                TextBase64EncodePolicy,
            )

            # Fail within seconds when the queue service is down (the SDK default waits ~80 s): the HTTP routes
            # that enqueue must answer 503 before GitHub's 10 s webhook timeout, and a worker's retry is the queue's.
            options = dict(message_encode_policy=TextBase64EncodePolicy(),
                           message_decode_policy=TextBase64DecodePolicy(),
                           retry_policy=ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=1,
                                                         random_jitter_range=0.5),
                           connection_timeout=5, read_timeout=10)
            if connection:
                client = QueueClient.from_connection_string(connection, name, **options)
            else:
                url = identity.get("queueServiceUri") or f"https://{identity['accountName']}.queue.core.windows.net"
                client = QueueClient(url, name, credential=_credential(identity), **options)
            try:
                client.create_queue()
            except ResourceExistsError:
                pass
            _clients[key] = client
        return _clients[key]


def table(name: str = TABLE, env: Mapping[str, str] | None = None):
    """A TableClient for `name`; the table is created if missing."""
    env = os.environ if env is None else env
    connection, identity = _connection(env)
    key = ("table", name, connection or repr(sorted(identity.items())))
    with _lock:
        if key not in _clients:
            from azure.data.tables import TableServiceClient

            if connection:
                service = TableServiceClient.from_connection_string(connection)
            else:
                url = identity.get("tableServiceUri") or f"https://{identity['accountName']}.table.core.windows.net"
                service = TableServiceClient(url, credential=_credential(identity))
            service.create_table_if_not_exists(name)
            _clients[key] = service.get_table_client(name)
        return _clients[key]


def forget_clients() -> None:
    """Drop cached clients (tests that point at a new emulator)."""
    with _lock:
        _clients.clear()


def send(name: str, text: str, env: Mapping[str, str] | None = None, *, delay: int = 0) -> None:
    """Put one message on queue `name`, invisible for `delay` seconds (0: at once)."""
    queue(name, env).send_message(text, visibility_timeout=delay or None)


def park(name: str, body: bytes | str, env: Mapping[str, str] | None = None) -> str:
    """Move a message that can never succeed to `<name>-poison`, as the host does after maxDequeueCount;
    returns the poison queue's name."""
    poison = name + POISON_SUFFIX
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    queue(poison, env).send_message(text)
    return poison
