"""Authentication and the session: ``--token-template``, a static token, or azure-identity."""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import attrs

from .._config import Limits, Timeout
from ..budget import GRAPH_BUDGET, RequestBudget
from ..clouds import get_cloud
from ..retry import RetryPolicy
from ..session import DEFAULT, ServiceCommsSession, _Default
from .errors import UsageError, error_detail
from .output.text import printable

TOKEN_ENV = "SERVICECOMMS_TOKEN"
CREDENTIALS_HINT = (
    "to authenticate: --token or --token-template (a static token), --device-code or --interactive "
    "(sign in as an admin), or an app's $AZURE_CLIENT_ID, $AZURE_TENANT_ID and "
    "$AZURE_CLIENT_SECRET (or --client-certificate); -v shows what each credential tried"
)


def device_code_prompt(stderr: TextIO) -> Callable[[str, str, Any], None]:
    """The device-code sign-in's instructions, on stderr (stdout may be carrying records)."""

    def prompt(verification_uri: str, user_code: str, expires_on: Any) -> None:
        until = f" (before {expires_on:%H:%M})" if hasattr(expires_on, "strftime") else ""
        stderr.write(
            f"To sign in, open {printable(verification_uri)} and enter the code "
            f"{printable(user_code)}{until}\n"
        )
        stderr.flush()

    return prompt


@attrs.frozen
class Auth:
    kwargs: dict[str, Any]
    credential: Any = None  # one the CLI made and must close

    async def close(self) -> None:
        if self.credential is not None:
            closed = self.credential.close()  # a sync credential's close() returns None
            if inspect.isawaitable(closed):
                await closed


def static_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The one static token for every tenant, if that is how this run authenticates."""
    if getattr(args, "token_template", None):
        return None
    return args.token or environ.get(TOKEN_ENV) or None


def make_auth(
    args: argparse.Namespace, environ: Mapping[str, str], stderr: TextIO | None = None
) -> Auth:
    """A per-tenant token from ``--token-template``, a static token (``--token`` or
    ``$SERVICECOMMS_TOKEN``), else an azure-identity credential.

    With a client id and a secret (``$AZURE_CLIENT_SECRET`` only: a flag would end up in shell history
    and process lists) or a certificate, that app's credential; otherwise ``DefaultAzureCredential``
    (environment, workload identity, managed identity, Azure CLI, ...). Tokens are asked per customer
    tenant, since the API refuses a token from another tenant.

    ``--device-code`` and ``--interactive`` sign an admin in (a user, as Graph PowerShell and the
    CLI for Microsoft 365 do), with ``--client-id`` the public client app to sign in to (default
    azure-identity's). These credentials exist only in synchronous form; the library calls them in
    a worker thread. ``--client-id`` given without a secret, a certificate or a sign-in flag is a
    usage error: it would otherwise be ignored by ``DefaultAzureCredential``.
    """
    template: str | None = getattr(args, "token_template", None)
    if template:
        return Auth({"token": lambda tenant: template.format(tenant=tenant)})
    token = static_token(args, environ)
    if token:
        return Auth({"token": token})
    from azure.identity.aio import (
        CertificateCredential,
        ClientSecretCredential,
        DefaultAzureCredential,
    )

    client_id = args.client_id or environ.get("AZURE_CLIENT_ID")
    auth_tenant = args.auth_tenant or environ.get("AZURE_TENANT_ID")
    secret = environ.get("AZURE_CLIENT_SECRET")
    certificate = args.client_certificate or environ.get("AZURE_CLIENT_CERTIFICATE_PATH")
    allowed = ["*"]
    authority = get_cloud(args.cloud).authority
    sign_in = "device_code" if getattr(args, "device_code", False) else None
    if getattr(args, "interactive", False):
        sign_in = "interactive"
    if sign_in is not None:
        return _sign_in(sign_in, args.client_id, auth_tenant, authority, stderr or sys.stderr)
    if args.client_id and not (secret or certificate):
        raise UsageError(
            "--client-id needs the app's secret ($AZURE_CLIENT_SECRET) or --client-certificate, "
            "or --device-code/--interactive to sign in as a user with that app"
        )
    try:
        credential: Any
        if client_id and (secret or certificate):
            if not auth_tenant:
                raise UsageError(
                    "--auth-tenant (or $AZURE_TENANT_ID) is required with a client secret or "
                    "certificate: the app's home tenant"
                )
            if certificate:
                credential = CertificateCredential(
                    auth_tenant,
                    client_id,
                    certificate_path=certificate,
                    password=environ.get("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
                    authority=authority,
                    additionally_allowed_tenants=allowed,
                )
            else:
                credential = ClientSecretCredential(
                    auth_tenant,
                    client_id,
                    secret or "",
                    authority=authority,
                    additionally_allowed_tenants=allowed,
                )
        else:
            credential = DefaultAzureCredential(
                authority=authority, additionally_allowed_tenants=allowed
            )
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot set up authentication: {error_detail(exc)}") from None
    return Auth({"credential": credential, "per_tenant_tokens": True}, credential)


def _sign_in(
    kind: str, client_id: str | None, auth_tenant: str | None, authority: str, stderr: TextIO
) -> Auth:
    """A user's sign-in: device code (prompt on stderr) or the system browser."""
    from azure.identity import DeviceCodeCredential, InteractiveBrowserCredential

    options: dict[str, Any] = {
        "authority": authority,
        # The admin's home tenant, else whichever tenant the account belongs to.
        "tenant_id": auth_tenant or "organizations",
        "additionally_allowed_tenants": ["*"],
    }
    if client_id:
        options["client_id"] = client_id
    credential: Any
    try:
        if kind == "device_code":
            credential = DeviceCodeCredential(prompt_callback=device_code_prompt(stderr), **options)
        else:
            credential = InteractiveBrowserCredential(**options)
    except (ValueError, OSError) as exc:
        raise UsageError(f"cannot set up sign-in: {error_detail(exc)}") from None
    return Auth({"credential": credential, "per_tenant_tokens": True}, credential)


def budget_of(args: argparse.Namespace) -> RequestBudget | _Default | None:
    """``--budget-per-tenant``/``--budget-per-app``/``--no-budget`` (the API's default without them)."""
    per_tenant = getattr(args, "budget_per_tenant", None)
    per_app = getattr(args, "budget_per_app", None)
    if getattr(args, "no_budget", False):
        if per_tenant or per_app:
            raise UsageError("--no-budget excludes --budget-per-tenant and --budget-per-app")
        return None
    if per_tenant is None and per_app is None:
        return DEFAULT
    return RequestBudget(
        per_tenant=per_tenant if per_tenant is not None else GRAPH_BUDGET.per_tenant,
        per_app=per_app if per_app is not None else GRAPH_BUDGET.per_app,
    )


def make_session(
    args: argparse.Namespace, auth: Auth, *, concurrency: int = 1
) -> ServiceCommsSession[Any]:
    options: dict[str, Any] = dict(auth.kwargs)
    budget = budget_of(args)
    if budget is not DEFAULT:
        options["budget"] = budget
    try:
        return ServiceCommsSession(
            api=args.api,
            cloud=args.cloud,
            base_url=args.base_url,
            timeout=Timeout(total=args.timeout, read=args.timeout),
            retry=RetryPolicy(attempts=args.attempts),
            limits=Limits(max_connections=max(Limits().max_connections, concurrency)),
            **options,
        )
    except ValueError as exc:  # e.g. $SERVICECOMMS_BASE_URL, which no argparse type has seen
        raise UsageError(str(exc)) from None
