"""Authentication and the session: ``--token-template``, a static token, or azure-identity."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

import attrs

from .._config import Limits, Timeout
from ..clouds import get_cloud
from ..retry import RetryPolicy
from ..session import ServiceCommsSession
from .errors import UsageError, error_detail

TOKEN_ENV = "SERVICECOMMS_TOKEN"


@attrs.frozen
class Auth:
    kwargs: dict[str, Any]
    credential: Any = None  # one the CLI made and must close

    async def close(self) -> None:
        if self.credential is not None:
            await self.credential.close()


def static_token(args: argparse.Namespace, environ: Mapping[str, str]) -> str | None:
    """The one static token for every tenant, if that is how this run authenticates."""
    if getattr(args, "token_template", None):
        return None
    return args.token or environ.get(TOKEN_ENV) or None


def make_auth(args: argparse.Namespace, environ: Mapping[str, str]) -> Auth:
    """A per-tenant token from ``--token-template``, a static token (``--token`` or
    ``$SERVICECOMMS_TOKEN``), else an azure-identity credential.

    With a client id and a secret (``$AZURE_CLIENT_SECRET`` only: a flag would end up in shell history
    and process lists) or a certificate, that app's credential; otherwise ``DefaultAzureCredential``
    (environment, workload identity, managed identity, Azure CLI, ...). Tokens are asked per customer
    tenant, since the API refuses a token from another tenant.
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


def make_session(
    args: argparse.Namespace, auth: Auth, *, concurrency: int = 1
) -> ServiceCommsSession[Any]:
    try:
        return ServiceCommsSession(
            api=args.api,
            cloud=args.cloud,
            base_url=args.base_url,
            timeout=Timeout(total=args.timeout, read=args.timeout),
            retry=RetryPolicy(attempts=args.attempts),
            limits=Limits(max_connections=max(Limits().max_connections, concurrency)),
            **auth.kwargs,
        )
    except ValueError as exc:  # e.g. $SERVICECOMMS_BASE_URL, which no argparse type has seen
        raise UsageError(str(exc)) from None
