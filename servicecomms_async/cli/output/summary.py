"""The scan summary: the operation's tally, the totals and the per-tenant failure list, drawn with
rich; plus the one-line description of an error that the failure list and the commands share."""

from __future__ import annotations

from typing import Any, TextIO

from ...errors import APIStatusError, EndpointRetiredError
from ...scan import ScanItem, ScanProgress, TenantDone, TenantFailed
from ..errors import error_detail
from ..registry import Operation
from ..selection import retired_hint
from .console import Printer, table
from .records import dumps


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

    def failure_record(self, failed: TenantFailed) -> dict[str, Any]:
        """One failed tenant for programs: the whole tenant id and the error's parts, uncut."""
        error = failed.error
        status = error if isinstance(error, APIStatusError) else None
        message = (status.message or status.body_text or "") if status is not None else str(error)
        return {
            "tenant": failed.tenant_id,
            "error": type(error).__name__,
            "status": status.status if status is not None else None,
            "code": (status.code or None) if status is not None else None,
            "message": message.strip() or type(error).__name__,
            "request_id": (status.request_id or None) if status is not None else None,
        }

    def write_failures(self, out: TextIO) -> None:
        """``--failures FILE``: one JSON object a line per failed tenant, in tenant order."""
        for failed in sorted(self.failures, key=lambda f: f.tenant_id):
            out.write(dumps(self.failure_record(failed)) + "\n")
        out.flush()

    def to_json(self, progress: ScanProgress, *, interrupted: bool = False) -> dict[str, Any]:
        """``--summary-format json``: the totals, the operation's tables and the failures."""
        title = f"{self.operation.name}: {progress.tenants_total} tenants"
        return {
            "api": self.operation.api,
            "operation": self.operation.name,
            "interrupted": interrupted,
            "tenants": progress.tenants_total,
            "finished": progress.tenants_finished,
            "succeeded": progress.tenants_succeeded,
            "failed": progress.tenants_failed,
            "items": progress.items,
            "seconds": round(progress.elapsed, 3),
            "tables": [
                {
                    "title": found.title,
                    "columns": list(found.columns),
                    "rows": [dict(zip(found.columns, row, strict=True)) for row in found.rows],
                }
                for found in self.tally.tables(title)
            ],
            "failures": [
                self.failure_record(f) for f in sorted(self.failures, key=lambda f: f.tenant_id)
            ],
        }

    def render(
        self, printer: Printer, progress: ScanProgress, *, interrupted: bool = False
    ) -> None:
        title = f"{self.operation.name}: {progress.tenants_total} tenants"
        for found in self.tally.tables(title):
            printer.print(table(found.title, found.columns, found.rows))
        if interrupted:
            printer.print(
                f"Interrupted after {progress.elapsed:.1f}s: {progress.tenants_finished} of "
                f"{progress.tenants_total} tenants finished, {progress.tenants_succeeded} "
                f"succeeded, {progress.tenants_failed} failed, {progress.items} items."
            )
        else:
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
                folded=("Error", "Code", "Detail"),
            )
        )
        if any(isinstance(f.error, EndpointRetiredError) for f in self.failures):
            printer.print(retired_hint(self.operation))
