"""The scan's progress bar: drawn with rich on stderr when it is a terminal, otherwise nothing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from ...scan import ScanProgress, TenantDone, TenantFailed


class ProgressBar:
    """``with ProgressBar(stderr, scan.progress, enabled=...) as tick: tick(result)``."""

    def __init__(self, stderr: TextIO, progress: ScanProgress, *, enabled: bool) -> None:
        self._stderr = stderr
        self._scan = progress
        self._enabled = enabled and stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last = 0.0

    def __enter__(self) -> Callable[[object], None]:
        if not self._enabled:
            return lambda result: None
        self._bar = Progress(
            TextColumn("[bold]tenants"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TextColumn("{task.fields[items]:,} items"),
            TextColumn("{task.fields[rate]:,.0f} items/s"),
            TimeElapsedColumn(),
            console=Console(file=self._stderr),
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(
            "scan", total=self._scan.tenants_total, failed=0, items=0, rate=0.0
        )
        return self._tick

    def _tick(self, result: object) -> None:
        now = time.monotonic()
        # Redraw on every finished tenant, and at most 10 times a second for items.
        if not isinstance(result, (TenantDone, TenantFailed)) and now - self._last < 0.1:
            return
        self._last = now
        self._update()

    def _update(self) -> None:
        if self._bar is None or self._task is None:
            return
        p = self._scan
        self._bar.update(
            self._task,
            completed=p.tenants_finished,
            failed=p.tenants_failed,
            items=p.items,
            rate=p.items_per_second,
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._update()
            self._bar.stop()
