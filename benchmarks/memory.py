"""4. Memory: peak RSS of a fresh process streaming a small and a large number of messages, and of a
many-tenant scan.

A stream must not hold what it has already delivered, so the peak should barely move between
``memory_small`` and ``memory_large`` messages. Each figure is one fresh ``python -m benchmarks.child``
process (peak RSS: ``VmHWM``, see :func:`.child.peak_rss_mb`), library and floor alike; the emulator serving them is
another process and is not counted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from servicecomms_async.auth import CredentialTokenProvider

from .measure import Outcome, Row, ratio
from .server import REPO_ROOT, ServerConfig, Servers, python_env
from .sizes import Sizes

BAR_MB = 20.0
CHILD_TIMEOUT = 600


def run_child(*args: str) -> dict[str, Any]:
    """Run ``python -m benchmarks.child ARGS`` and return the JSON it printed."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.child", *args],
        cwd=REPO_ROOT,
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"benchmarks.child {' '.join(args)} failed ({completed.returncode}):\n"
            f"{completed.stderr[-3000:]}"
        )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def _stream_peak(mode: str, base_url: str, expected: int) -> float:
    result = run_child("stream", "--mode", mode, "--base-url", base_url)
    if result["items"] != expected:
        raise RuntimeError(f"{mode} streamed {result['items']} messages, expected {expected}")
    return float(result["peak_rss_mb"])


class _Credential:
    """A stand-in for azure-identity's credentials: a 1.5 KB token valid for an hour, and close()."""

    def __init__(self, clock: list[float]) -> None:
        self._clock = clock
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        class Token:
            token = "t" * 1500
            expires_on = self._clock[0] + 3600

        return Token()

    async def close(self) -> None:
        self.closed = True


async def token_bounds(tenants: int, credentials: int) -> tuple[list[Row], dict[str, Any]]:
    """Token memory after ``tenants`` tenants (an hour later, once they have expired) and how many
    of ``credentials`` factory-made credentials are still open."""
    import asyncio
    import tracemalloc

    now = [1_000_000.0]
    made: list[_Credential] = []

    def factory(tenant: str) -> _Credential:
        made.append(_Credential(now))
        return made[-1]

    def unkept(tenant: str) -> _Credential:  # nothing here holds on to them
        return _Credential(now)

    provider = CredentialTokenProvider(unkept, scope="https://x/.default", clock=lambda: now[0])
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    for n in range(tenants):
        await provider.get_token(f"tenant-{n}.example.com")
    await asyncio.sleep(0)
    full = tracemalloc.get_traced_memory()[0] - base
    live = len(provider._cache)  # what the cache holds, for the report
    now[0] += 3600 + 120  # an hour on: every token has expired
    await provider.get_token("one-more.example.com")
    await asyncio.sleep(0.01)
    later = tracemalloc.get_traced_memory()[0] - base
    cached_later = len(provider._cache)
    tracemalloc.stop()
    await provider.aclose()

    now[0] = 1_000_000.0
    provider = CredentialTokenProvider(factory, scope="https://x/.default", clock=lambda: now[0])
    for n in range(credentials):
        await provider.get_token(f"tenant-{n}.example.com")
    await asyncio.sleep(0.01)
    still_open = sum(not c.closed for c in made)
    await provider.aclose()
    rows = [
        Row(
            benchmark=f"4. token cache after {tenants:,} tenants, then an hour later",
            library=(
                f"{live:,} tokens, {full / 1e6:.1f} MB → {cached_later} token, {later / 1e6:.2f} MB"
            ),
            floor="—",
            ratio=None,
            bar="only live tokens held",
            met=cached_later == 1,
            notes="traced allocations (tracemalloc) of the provider; 1.5 KB tokens valid for an hour",
        ),
        Row(
            benchmark=f"4. factory-made credentials still open after {credentials:,} tenants",
            library=f"{still_open:,} of {len(made):,}",
            floor="—",
            ratio=None,
            bar="not all open (bound: max_open_credentials)",
            met=still_open < len(made),
            notes="the least recently used close past the bound (256), the rest when idle (300 s)",
        ),
    ]
    return rows, {
        "token_cache_live": live,
        "token_cache_after_expiry": cached_later,
        "token_cache_bytes": full,
        "token_cache_bytes_after_expiry": later,
        "credentials_open": still_open,
        "credentials_made": len(made),
    }


async def run(sizes: Sizes, servers: Servers) -> Outcome:
    peaks: dict[str, dict[int, float]] = {"library": {}, "floor": {}}
    for count in (sizes.memory_small, sizes.memory_large):
        config = ServerConfig(messages_per_tenant=count)
        base_url = servers.get(config)
        for mode in ("floor", "library"):
            peaks[mode][count] = _stream_peak(mode, base_url, count)
        if count == sizes.memory_large:
            servers.stop(config)  # a big emulator need not outlive this benchmark
    growth = {
        mode: by_count[sizes.memory_large] - by_count[sizes.memory_small]
        for mode, by_count in peaks.items()
    }
    lib, flo = peaks["library"], peaks["floor"]
    stream_row = Row(
        benchmark=(
            f"4. peak RSS growth, {sizes.memory_small:,} → {sizes.memory_large:,} messages "
            "streamed (MB)"
        ),
        library=f"{growth['library']:+.1f} ({lib[sizes.memory_small]:.1f} → {lib[sizes.memory_large]:.1f})",
        floor=f"{growth['floor']:+.1f} ({flo[sizes.memory_small]:.1f} → {flo[sizes.memory_large]:.1f})",
        ratio=None,
        bar=f"growth < {BAR_MB:g} MB",
        met=growth["library"] < BAR_MB,
        notes="one fresh process per figure",
    )

    base_url = servers.get(ServerConfig(latency=sizes.fanout_latency))
    scan_peaks: dict[str, float] = {}
    scan_items: dict[str, int] = {}
    for mode in ("floor", "library"):
        result = run_child(
            "scan",
            "--mode",
            mode,
            "--base-url",
            base_url,
            "--tenants",
            str(sizes.fanout_tenants),
            "--concurrency",
            str(sizes.fanout_concurrency),
        )
        scan_peaks[mode] = float(result["peak_rss_mb"])
        scan_items[mode] = int(result["items"])
    scan_row = Row(
        benchmark=f"4. peak RSS, scan of {sizes.fanout_tenants:,} tenants x current_status (MB)",
        library=f"{scan_peaks['library']:.1f}",
        floor=f"{scan_peaks['floor']:.1f}",
        ratio=ratio(scan_peaks["library"], scan_peaks["floor"]),
        bar="— (reported)",
        met=None,
        notes=f"concurrency {sizes.fanout_concurrency}; includes the interpreter and imports",
    )
    token_rows, token_details = await token_bounds(
        sizes.fanout_tenants * 10, sizes.fanout_tenants * 5 // 2
    )
    return Outcome(
        "memory",
        [stream_row, scan_row, *token_rows],
        {
            **token_details,
            "stream_peaks_mb": peaks,
            "growth_mb": growth,
            "scan_peaks_mb": scan_peaks,
            "scan_items": scan_items,
        },
    )
