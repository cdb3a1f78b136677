"""The scan summary: the operation's tally, the totals and the per-tenant failure list, drawn with
rich; plus the one-line description of an error that the failure list and the commands share."""

from __future__ import annotations

from typing import Any

from ...errors import APIStatusError, EndpointRetiredError
from ...scan import ScanItem, ScanProgress, TenantDone, TenantFailed
from ..errors import error_detail
from ..registry import Operation
from ..selection import retired_hint
from .console import Printer, table


class ScanSummary:
    """Collects a scan's results (the tally, the failures) and renders them at the end."""

    def __init__(self, operation: Operation) -> None:
        self.operation = operation
        self.tally = operation.tally()
        self.failures: list[TenantFailed] = []
        self.succeeded = 0

    def add(self, result: ScanItem[Any] | TenantDone | TenantFailed) -> None:
        if isinstance(result, TenantFailed):
            self.failures.append(result)
        elif isinstance(result, TenantDone):
            self.succeeded += 1
        else:
            self.tally.add(result.tenant_id, result.value)

    def render(self, printer: Printer, progress: ScanProgress) -> None:
        title = f"{self.operation.name}: {progress.tenants_total} tenants"
        for found in self.tally.tables(title):
            printer.print(table(found.title, found.columns, found.rows))
        printer.print(
            f"Scanned {progress.tenants_total} tenants in {progress.elapsed:.1f}s: "
            f"{progress.tenants_succeeded} succeeded, {progress.tenants_failed} failed, "
            f"{progress.items} items ({progress.items_per_second:,.0f} items/s)."
        )
        if not self.failures:
            return
        rows = []
        for failed in sorted(self.failures, key=lambda f: f.tenant_id):
            error = failed.error
            status = str(error.status) if isinstance(error, APIStatusError) else ""
            code = (error.code or "") if isinstance(error, APIStatusError) else ""
            rows.append((failed.tenant_id, type(error).__name__, status, code, error_detail(error)))
        printer.print(
            table(
                f"Failed tenants ({len(self.failures)})",
                ("Tenant", "Error", "HTTP", "Code", "Detail"),
                rows,
            )
        )
        if any(isinstance(f.error, EndpointRetiredError) for f in self.failures):
            printer.print(retired_hint(self.operation))
