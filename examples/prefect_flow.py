"""Prefect (native async): a flow that maps one async task over the shards, each awaiting
``watch_shard``. Deploy it on a schedule (``flow.serve(cron="*/5 * * * *")``).

Prefect runs the mapped tasks concurrently; each shard has its own session, state file and sinks.
To keep shards from running twice at once across deployments, give the task a concurrency limit
tag with one slot per shard (``prefect concurrency-limit create servicecomms-shard-0 1``, ...), or
rely on the state file's lock: a second writer stops at once with "in use by another watcher".

The same coroutine fits the other async engines:

* **Temporal**: ``@activity.defn async def watch(index: int, count: int) -> dict`` returning
  ``await watch_shard(...)``; a workflow on a schedule runs one activity per shard. Retries are
  safe: the events' ids are deterministic, and delivery is at least once.
* **Ray**: an async actor per shard (``@ray.remote class Shard: async def run(self): return await
  watch_shard(...)``), pinned to a node so its state file stays local.
* **Airflow >= 3**: ``@task async def watch(index)`` and ``watch.expand(index=range(N))``.

Runs without Prefect installed (``python prefect_flow.py`` prints the plan): the import is guarded.
"""

from __future__ import annotations

import os
from typing import Any

from servicecomms_async import ServiceCommsSession
from servicecomms_async.sharding import Shard, watch_shard
from servicecomms_async.watch import JsonlSink

SHARDS = int(os.environ.get("SERVICECOMMS_SHARDS", "4"))
TENANTS_FILE = os.environ.get("SERVICECOMMS_TENANTS", "/config/tenants.txt")
STATE = os.environ.get("SERVICECOMMS_STATE", "/state/watch-{shard}.db")


def read_tenants(path: str = TENANTS_FILE) -> list[str]:
    with open(path, encoding="utf-8") as file:
        return [line.split("#", 1)[0].strip() for line in file if line.split("#", 1)[0].strip()]


def make_session() -> ServiceCommsSession[Any]:
    from azure.identity.aio import ClientSecretCredential

    def credential_for(tenant: str) -> ClientSecretCredential:
        return ClientSecretCredential(
            tenant, os.environ["AZURE_CLIENT_ID"], os.environ["AZURE_CLIENT_SECRET"]
        )

    return ServiceCommsSession(credential_for, api="graph")


async def watch_one_shard(index: int, count: int = SHARDS) -> dict[str, Any]:
    """One cycle of shard ``index`` of ``count``; a JSON-able summary (Prefect stores it as the
    task's result)."""
    shard = Shard(index, count)
    return await watch_shard(
        read_tenants(),
        shard,
        STATE,
        session=make_session,
        sinks=[JsonlSink(f"/state/events-{shard.index}.jsonl")],
        concurrency=25,
        tenant_timeout=120,
    )


try:
    from prefect import flow, task, unmapped
except ImportError:
    flow = task = unmapped = None

if flow is not None and task is not None:
    watch_task = task(name="watch shard", retries=1, retry_delay_seconds=30)(watch_one_shard)

    @flow(name="servicecomms-watch")
    def watch_all(count: int = SHARDS) -> list[dict[str, Any]]:
        futures = watch_task.map(list(range(count)), count=unmapped(count))
        return [f.result() for f in futures]


if __name__ == "__main__":
    engine = "Prefect" if flow is not None else "Prefect (not installed)"
    print(f"{engine}: a flow mapping watch_shard over {SHARDS} shards; state {STATE}")
