"""Celery: one task per shard, each a plain call of ``run_watch_shard`` (``asyncio.run`` inside).

Celery has no native asyncio (celery/celery#3884): an ``async def`` task returns an un-awaited
coroutine. So the task is synchronous and runs one event loop per call; a watch cycle takes seconds
to minutes, so the loop's start-up cost (milliseconds) does not matter. One task per *shard*, not
per tenant: a shard's tenants share one connection pool and token cache for the cycle.

    celery -A celery_tasks worker --concurrency 4      # a process per shard at most
    celery -A celery_tasks beat                         # every 5 minutes: one task per shard

Each shard writes its own state file (``/state/watch-{shard}.db``): put them on a disk the
workers share, or route each shard's task to the same worker (a queue per shard). Two tasks of one
shard never write at once: the second stops with "in use by another watcher" (retried by Celery).

Runs without Celery installed (``python celery_tasks.py`` prints the plan): the import is guarded.
"""

from __future__ import annotations

import os
from typing import Any

from servicecomms_async import ServiceCommsSession
from servicecomms_async.sharding import Shard, run_watch_shard
from servicecomms_async.watch import JsonlSink

SHARDS = int(os.environ.get("SERVICECOMMS_SHARDS", "4"))
TENANTS_FILE = os.environ.get("SERVICECOMMS_TENANTS", "/config/tenants.txt")
STATE = os.environ.get("SERVICECOMMS_STATE", "/state/watch-{shard}.db")


def read_tenants(path: str = TENANTS_FILE) -> list[str]:
    with open(path, encoding="utf-8") as file:
        return [line.split("#", 1)[0].strip() for line in file if line.split("#", 1)[0].strip()]


def make_session() -> ServiceCommsSession[Any]:
    # A multi-tenant app: one token per customer tenant (Graph reads the tenant from the token).
    from azure.identity.aio import ClientSecretCredential

    def credential_for(tenant: str) -> ClientSecretCredential:
        return ClientSecretCredential(
            tenant, os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"]
        )

    return ServiceCommsSession(credential_for, api="graph")


def watch_one_shard(index: int, count: int = SHARDS) -> dict[str, Any]:
    """The task's body: one cycle of shard ``index`` of ``count``; a JSON-able summary."""
    shard = Shard(index, count)
    return run_watch_shard(
        read_tenants(),
        shard,
        STATE,
        session=make_session,  # made inside the task's own event loop
        sinks=lambda: [JsonlSink(f"/state/events-{shard.index}.jsonl")],
        concurrency=25,
        tenant_timeout=120,
    )


try:
    from celery import Celery
except ImportError:  # the example still imports, and shows what it would do
    Celery = None

if Celery is not None:
    app = Celery("servicecomms", broker=os.environ.get("CELERY_BROKER_URL", "redis://localhost"))

    @app.task(name="servicecomms.watch_shard", acks_late=True, autoretry_for=(OSError,))
    def watch_shard_task(index: int, count: int = SHARDS) -> dict[str, Any]:
        return watch_one_shard(index, count)

    @app.on_after_configure.connect
    def schedule(sender: Any, **_: Any) -> None:
        for index in range(SHARDS):
            sender.add_periodic_task(
                300.0, watch_shard_task.s(index, SHARDS), name=f"watch shard {index}/{SHARDS}"
            )


if __name__ == "__main__":
    state = ", ".join(Shard(i, SHARDS).state_path(STATE) for i in range(SHARDS))
    engine = "Celery" if Celery is not None else "Celery (not installed)"
    print(f"{engine}: {SHARDS} tasks every 300 s, run_watch_shard per shard; state {state}")
