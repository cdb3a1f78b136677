"""``demo``: the emulator in-process, some tenants degraded and a few throttled or failing, scanned
through Microsoft Graph (or ``--api legacy``) with the summary a real scan prints."""

from __future__ import annotations

import argparse
from typing import Any, TextIO

from ...retry import RetryPolicy
from ...session import ServiceCommsSession
from ...transport import Limits
from ..errors import EXIT_OK, UsageError
from ..output.console import Printer
from ..registry import Operation
from .scan import run_scan

DEMO_TOKEN = "demo-token"


async def run(args: argparse.Namespace, op: Operation, stdout: TextIO, stderr: TextIO) -> int:
    from ...emulator import Emulator, EmulatorConfig
    from ...emulator.faults import Fault, FaultPlan, fault_middleware

    graph = op.api == "graph"
    try:
        config = EmulatorConfig(
            seed=args.seed,
            tenants=300 if args.tenants is None else args.tenants,
            messages_per_tenant=40,
            degraded_ratio=0.15,
            latency=0.02,
            latency_jitter=0.015,
        )
    except ValueError as exc:
        raise UsageError(f"demo: {exc}") from None
    tenant_ids = Emulator(config).tenant_ids
    # A few tenants fail every time (two kinds of throttling, a server fault, a refusal: on Graph's
    # routes each in Graph's own form, e.g. 429 for both throttles) and a small share of all
    # requests fails once in a while, which retries absorb.
    always = (Fault.THROTTLE_AF429, Fault.THROTTLE_429, Fault.SERVER_ERROR, Fault.FORBIDDEN)
    failing = {tenant: always[i % len(always)] for i, tenant in enumerate(tenant_ids[-4:])}
    flaky = (Fault.THROTTLE_429, Fault.THROTTLE_AF429, Fault.UNAVAILABLE, Fault.RESET_BEFORE_BODY)
    plan = FaultPlan(rate=0.03, seed=args.seed, kinds=flaky, retry_after=0.1, tenant_faults=failing)
    # Short, few retries: the always-failing tenants give up in well under a second.
    retry = RetryPolicy(attempts=3, deadline=2.0, backoff_initial=0.05, backoff_max=0.2)
    if graph and op.name == "overview":
        args.expand_issues = True  # so that the summary can name the active issues
    emulator = Emulator(config, middlewares=[fault_middleware(plan)], record_requests=False)
    async with emulator as emu:
        base_url = emu.graph_base_url if graph else emu.base_url
        printer = Printer(
            stdout if args.format == "table" or args.output else stderr, wide=args.wide
        )
        degraded = round(config.degraded_ratio * len(tenant_ids))
        printer.print(
            f"Emulator on {base_url}: {len(tenant_ids)} simulated tenants, ~{degraded} with "
            f"incidents, {len(failing)} always failing, 3% of requests failing once."
        )

        def session_factory() -> ServiceCommsSession[Any]:
            return ServiceCommsSession(
                # Graph reads the tenant from the token: the emulator's own token for each tenant.
                token=Emulator.graph_token if graph else DEMO_TOKEN,
                api=op.api,
                base_url=base_url,
                retry=retry,
                limits=Limits(max_connections=max(100, args.concurrency)),
            )

        await run_scan(
            args, op, stdout, stderr, {}, tenants=tenant_ids, session_factory=session_factory
        )
    printer.print(
        "The failures above are simulated; the demo exits 0. To try the commands yourself:"
    )
    printer.print("  servicecomms emulator --port 8080 --tenants-file tenants.txt   # elsewhere")
    first = tenant_ids[0] if tenant_ids else "<tenant>"
    if graph:
        printer.print(
            "  servicecomms overview --base-url http://127.0.0.1:8080/v1.0 "
            f"--token-template 'emulator-app.{{tenant}}' --tenant {first}"
        )
    else:
        printer.print(
            "  servicecomms status --api legacy --base-url http://127.0.0.1:8080/api/v1.0 "
            f"--token any --tenant {first}"
        )
    # The demo's failures are part of the show: it succeeded if it ran.
    return EXIT_OK
