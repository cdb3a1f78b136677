"""A local Microsoft Entra ID stand-in: the v2.0 client-credentials token endpoint, over HTTPS on loopback.

Real azure-identity credentials talk to it unchanged::

    async with IdentityServer() as idp, Emulator(config, token_validator=idp.token_validator) as emu:
        idp.add_tenants(emu.tenant_ids)
        app = idp.register_app(secret="not-a-real-secret")
        credential = ClientSecretCredential(
            emu.tenant_ids[0], app.client_id, "not-a-real-secret",
            authority=idp.authority, connection_verify=idp.ca_path,
        )

What it serves (``https://127.0.0.1:PORT``, a certificate from a throwaway CA made with ``trustme``):

* ``POST /{tenant}/oauth2/v2.0/token``, ``grant_type=client_credentials``, the client authenticated by
  ``client_secret`` or by ``client_assertion`` (a JWT signed RS256 or PS256 with the key of a registered
  certificate, found by its ``x5t#S256`` or ``x5t`` thumbprint: what azure-identity's
  ``CertificateCredential`` sends). ``{tenant}`` is a tenant GUID or one of its domains. Success is the v2
  shape (``token_type``, ``expires_in`` as an int, ``ext_expires_in``, ``access_token``); errors are the
  v2 error shape (``error``, ``error_description`` starting with the AADSTS code and ending with trace
  id, correlation id and timestamp lines, ``error_codes``, ``timestamp``, ``trace_id``,
  ``correlation_id``, ``error_uri``), HTTP 400, or 401 for ``invalid_client``. A ``claims`` parameter
  must be JSON; it is recorded in :attr:`IdentityServer.claims_requests`.
* ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and ``GET /{tenant}/discovery/v2.0/keys``, for
  clients that discover the endpoint and for validators that want the signing key. azure-identity's async
  credentials need neither (they post straight to the token endpoint).

Errors answered (codes and texts as Entra sends them; the selection is this emulator's):

==========================  =====================  ====================================================
condition                   error                  code
==========================  =====================  ====================================================
missing parameter           invalid_request        AADSTS900144 (400)
grant other than client     unsupported_grant_type AADSTS70003 (400)
credentials
unknown tenant              invalid_request        AADSTS90002 (400)
app unknown, or not         unauthorized_client    AADSTS700016 (400)
consented in the tenant
no secret and no assertion  invalid_client         AADSTS7000218 (401)
wrong secret                invalid_client         AADSTS7000215 (401)
bad assertion               invalid_client         AADSTS700027 signature/key, AADSTS700024 time,
                                                   AADSTS700021 issuer, AADSTS50027 malformed (401)
scope without /.default     invalid_scope          AADSTS1002012 (400)
``{API}/Permission/.default``  invalid_resource    AADSTS500011 (400)
other resource              invalid_scope          AADSTS70011 (400)
==========================  =====================  ====================================================

Access tokens are RS256 JWTs signed with a key made at start-up: ``aud`` (``https://manage.office.com``
by default), ``iss`` (``https://sts.windows.net/{tid}/``), ``iat``/``nbf``/``exp``, ``tid`` (always the
GUID, even when the URL named a domain), ``roles`` (the app's, omitted when empty, as Entra does),
``appid``, ``appidacr``, ``oid``/``sub`` (the app's service principal in that tenant), ``idtyp``, ``ver``
and ``jti``. :attr:`IdentityServer.token_lifetime` (seconds, default 3599) sets ``expires_in`` and ``exp``
for tokens issued from then on, so tests can see expiry.

:meth:`IdentityServer.token_validator` is the emulator's ``token_validator`` hook. It checks, in order
(answers are HTTP 401 with a ``WWW-Authenticate: Bearer`` header and an OData error body):

* a well-formed JWT, RS256, signed by this server, within ``nbf``..``exp`` (``clock_skew`` seconds of
  leeway, 0 by default so tests see expiry at once; real services allow about 5 minutes), and ``aud``
  the configured audience: else ``InvalidAuthenticationToken`` (the legacy API's body for these cases
  was never captured; the code is Microsoft Graph's, tests/fixtures/graph_error_401_invalid_token.json);
* not revoked (:meth:`IdentityServer.revoke`): else ``InvalidAuthenticationToken``;
* the tenant in the URL, a GUID or a domain, is the token's ``tid``: else ``AF20010`` with the Activity
  API's text. The status is 401, the choice made here: the real service's status for this case is not
  documented, and 401 is what Azure Resource Manager answers for a token from the wrong tenant
  (``InvalidAuthenticationTokenTenant``). A client that refreshes once on 401 then stops;
* ``roles`` holds ``ServiceHealth.Read``: else ``AF10001`` with the text of tests/fixtures/
  error_af10001_401.json (HTTP 401, as captured).

Microsoft Graph. A scope of ``https://graph.microsoft.com/.default`` (or
``00000003-0000-0000-c000-000000000000/.default``, Graph's application id) gets a token with that ``aud``
and the app's ``graph_roles`` (``ServiceHealth.Read.All`` and ``ServiceMessage.Read.All`` unless
registered otherwise); ``https://graph.microsoft.com/{Permission}/.default`` is ``invalid_resource``. The
legacy audience and roles are unchanged. Client credentials only give application tokens, so
:meth:`IdentityServer.issue_graph_token` mints a token directly, delegated (``scp``, a user ``oid``) or
not, for tests. :meth:`IdentityServer.graph_token_validator` is the emulator's ``graph_token_validator``
hook, awaited with the token and the permission the route needs; it answers in Graph's error shape:

* a well-formed JWT signed by this server, within its lifetime, ``aud`` one of Graph's, not revoked: else
  401 ``InvalidAuthenticationToken`` (a legacy ``https://manage.office.com`` token is refused here, as a
  Graph token is by :meth:`IdentityServer.token_validator`);
* delegated (``scp`` present): the permission is one of the space-separated ``scp`` scopes; application:
  the permission is in ``roles``, except ``ServiceMessageViewpoint.Write``, which exists only as a
  delegated permission: the token is accepted as an application caller and the emulator answers 403.
  Else 403 ``Authorization_RequestDenied``.

It accepts with ``GraphCaller(tid, delegated, user, app)``, where ``user`` is the token's ``oid`` for a
delegated token, so a user's viewpoint state survives a token refresh, and ``app`` its ``appid`` (``azp``
in a v2 token): the app Graph's request limits count it against (:mod:`.limits`).

It counts: :attr:`IdentityServer.token_requests` (every POST to a token endpoint, by tenant GUID, or by
the tenant as written in the URL when it is unknown), :attr:`IdentityServer.tokens_issued`,
:attr:`IdentityServer.rejections` (by reason) and :attr:`IdentityServer.accepted`.

Nothing here logs or echoes a secret, an assertion or a token.

It needs ``trustme`` and ``cryptography`` (the ``emulator`` extra). Without them this module still
imports; :class:`IdentityServer` and :func:`generate_client_certificate` raise an ``ImportError``
that ends ``install with pip install "servicecomms-async[emulator]"``. The socket, ``start``,
``stop`` and ``async with`` are :class:`~.server.LoopbackServer`'s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from .errors import JSON_TYPE, entra_error, graph_error, odata_error
from .graph import (
    GRAPH_AUDIENCES,
    SERVICE_HEALTH_READ,
    SERVICE_MESSAGE_READ,
    SERVICE_MESSAGE_VIEWPOINT_WRITE,
    GraphCaller,
)
from .parsing import GUID_RE, b64url_decode, b64url_encode, is_domain_name
from .server import LoopbackServer

try:
    import trustme
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.x509.oid import NameOID
except ImportError as missing:
    _MISSING_EXTRA: ImportError | None = missing
else:
    _MISSING_EXTRA = None

__all__ = [
    "DEFAULT_AUDIENCE",
    "GRAPH_DELEGATED_SCOPES",
    "GRAPH_ROLES",
    "REQUIRED_ROLE",
    "DirectoryTenant",
    "IdentityServer",
    "IssuedToken",
    "RegisteredApp",
    "generate_client_certificate",
]

log = logging.getLogger(__name__)

DEFAULT_AUDIENCE = "https://manage.office.com"
REQUIRED_ROLE = "ServiceHealth.Read"
GRAPH_ROLES: tuple[str, ...] = (SERVICE_HEALTH_READ, SERVICE_MESSAGE_READ)
GRAPH_DELEGATED_SCOPES: tuple[str, ...] = (*GRAPH_ROLES, SERVICE_MESSAGE_VIEWPOINT_WRITE)
# Permissions Graph defines for delegated use only: an application token cannot hold them.
_DELEGATED_ONLY = frozenset({SERVICE_MESSAGE_VIEWPOINT_WRITE})
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
INSTALL_HINT = 'install with pip install "servicecomms-async[emulator]"'


def _require_extra() -> None:
    """Raise the ``ImportError`` that says what to install when trustme or cryptography is missing."""
    if _MISSING_EXTRA is not None:
        raise ImportError(
            f"the emulator's identity server needs trustme and cryptography "
            f"({_MISSING_EXTRA}): {INSTALL_HINT}",
            name=_MISSING_EXTRA.name,
        ) from _MISSING_EXTRA


@dataclass(frozen=True)
class DirectoryTenant:
    """A tenant the server knows: its GUID and the domains that also name it in URLs."""

    tenant_id: str
    domains: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegisteredApp:
    """An app registration. ``tenants=None``: consented in every known tenant (a multi-tenant app).
    ``roles`` go into its legacy-audience tokens, ``graph_roles`` into its Graph tokens."""

    client_id: str
    secret: str | None = field(default=None, repr=False)
    roles: tuple[str, ...] = (REQUIRED_ROLE,)
    tenants: frozenset[str] | None = None
    certificate_pem: bytes | None = field(default=None, repr=False)
    graph_roles: tuple[str, ...] = GRAPH_ROLES

    def consented_in(self, tenant_id: str) -> bool:
        return self.tenants is None or tenant_id in self.tenants


@dataclass(frozen=True)
class IssuedToken:
    """What the server issued (not the token itself): enough to revoke it or count refreshes."""

    jti: str
    tenant_id: str
    client_id: str
    issued_at: int
    expires_at: int


@dataclass(frozen=True)
class _Certificate:
    public_key: rsa.RSAPublicKey
    sha1: str  # base64url thumbprints, as x5t and x5t#S256 carry them
    sha256: str


class _Refused(Exception):
    """A token request refused with an Entra error."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description


class _Invalid(Exception):
    """An access token refused by the validator: HTTP status, OData code, message, counter reason."""

    def __init__(self, reason: str, code: str, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.reason = reason
        self.code = code
        self.message = message
        self.status = status


def generate_client_certificate(common_name: str = "servicecomms-async test app") -> bytes:
    """A self-signed RSA certificate and its private key in one PEM (what ``CertificateCredential``
    takes as ``certificate_data``). Register it with ``register_app(certificate=pem)``."""
    _require_extra()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=2))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


class IdentityServer(LoopbackServer):
    """A Microsoft Entra ID v2.0 token endpoint for tests (see the module docstring for the contract).

    ``token_lifetime`` seconds (an int of 1 or more; change it at any time), ``audience`` (the resource
    whose ``/.default`` scope is accepted and which goes into ``aud``), ``clock_skew`` seconds of leeway
    in the validator, ``clock`` (seconds since the epoch) for both.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token_lifetime: int = 3599,
        audience: str = DEFAULT_AUDIENCE,
        clock_skew: float = 0.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _require_extra()
        super().__init__(host=host, port=port)
        self.token_lifetime = token_lifetime
        self.audience = audience.rstrip("/")
        self.clock_skew = clock_skew
        self._clock = clock
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = b64url_encode(
            hashlib.sha1(  # a key id, as Entra's x5t: not a security use
                self._key.public_key().public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            ).digest()
        )
        self._ca = trustme.CA()
        self._tenants: dict[str, DirectoryTenant] = {}  # by lowercased GUID and domain
        self._apps: dict[str, RegisteredApp] = {}
        self._certificates: dict[str, _Certificate] = {}  # by client id
        self._revoked: set[str] = set()
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.token_requests: Counter[str] = Counter()
        self.claims_requests: list[str] = []
        self.issued: list[IssuedToken] = []
        self.rejections: Counter[str] = Counter()
        self.accepted = 0

    def __repr__(self) -> str:
        state = f"authority={self.authority!r}" if self._bound_port is not None else "not started"
        return (
            f"IdentityServer({state}, tenants={len(self.tenants)}, apps={len(self._apps)}, "
            f"token_lifetime={self.token_lifetime})"
        )

    # -- directory --

    @property
    def tenants(self) -> list[DirectoryTenant]:
        return list({t.tenant_id: t for t in self._tenants.values()}.values())

    def add_tenant(
        self, tenant: str | None = None, *, domains: Iterable[str] = ()
    ) -> DirectoryTenant:
        """Register a tenant by GUID (made up when ``None``) or by domain (its GUID is then derived from
        the domain), with more ``domains`` that name it. Returns the tenant."""
        names = [d.lower().rstrip(".") for d in domains]
        if tenant is None:
            tenant_id = str(uuid.uuid4())
        elif GUID_RE.fullmatch(tenant):
            tenant_id = tenant.lower()
        elif is_domain_name(tenant):
            names.insert(0, tenant.lower().rstrip("."))
            tenant_id = str(uuid.uuid5(uuid.NAMESPACE_DNS, names[0]))
        else:
            raise ValueError(f"tenant must be a GUID or a domain name, got {tenant!r}")
        for name in names:
            if not is_domain_name(name):
                raise ValueError(f"domains must be DNS names, got {name!r}")
        existing = self._tenants.get(tenant_id)
        merged = tuple(dict.fromkeys([*(existing.domains if existing else ()), *names]))
        record = DirectoryTenant(tenant_id, merged)
        for name in (tenant_id, *merged):
            other = self._tenants.get(name)
            if other is not None and other.tenant_id != tenant_id:
                raise ValueError(f"{name!r} already names tenant {other.tenant_id}")
            self._tenants[name] = record
        return record

    def add_tenants(self, tenants: Iterable[str]) -> list[DirectoryTenant]:
        """Register each tenant id (GUIDs or domains), e.g. ``idp.add_tenants(emulator.tenant_ids)``."""
        return [self.add_tenant(t) for t in tenants]

    def resolve_tenant(self, name: str) -> DirectoryTenant | None:
        """The tenant a URL names, by GUID or domain (case-insensitive), or ``None``."""
        return self._tenants.get(name.lower().rstrip("."))

    def register_app(
        self,
        *,
        client_id: str | None = None,
        secret: str | None = None,
        certificate: bytes | None = None,
        roles: Iterable[str] = (REQUIRED_ROLE,),
        tenants: Iterable[str] | None = None,
        graph_roles: Iterable[str] = GRAPH_ROLES,
    ) -> RegisteredApp:
        """Register an app that authenticates with ``secret`` and/or ``certificate`` (a PEM holding the
        certificate; from :func:`generate_client_certificate`). ``roles`` go into its tokens for the
        legacy API, ``graph_roles`` into its Microsoft Graph tokens; ``tenants`` (GUIDs or domains,
        registered already) limits where it is consented (default: every tenant)."""
        if secret is None and certificate is None:
            raise ValueError("register_app needs a secret, a certificate, or both")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ValueError("secret must be a non-empty string")
        client_id = (client_id or str(uuid.uuid4())).lower()
        consented: frozenset[str] | None = None
        if tenants is not None:
            resolved = []
            for name in tenants:
                found = self.resolve_tenant(name)
                if found is None:
                    raise ValueError(f"unknown tenant {name!r}: add_tenant() it first")
                resolved.append(found.tenant_id)
            consented = frozenset(resolved)
        if certificate is not None:
            cert = x509.load_pem_x509_certificate(certificate)
            public_key = cert.public_key()
            if not isinstance(public_key, rsa.RSAPublicKey):
                raise ValueError(
                    "certificate must have an RSA key (Entra signs assertions RS256/PS256)"
                )
            self._certificates[client_id] = _Certificate(
                public_key,
                sha1=b64url_encode(cert.fingerprint(hashes.SHA1())),  # x5t is SHA-1 by spec
                sha256=b64url_encode(cert.fingerprint(hashes.SHA256())),
            )
        app = RegisteredApp(
            client_id=client_id,
            secret=secret,
            roles=tuple(roles),
            tenants=consented,
            certificate_pem=certificate,
            graph_roles=tuple(graph_roles),
        )
        self._apps[client_id] = app
        return app

    def revoke(
        self, *, jti: str | None = None, tenant: str | None = None, client_id: str | None = None
    ) -> int:
        """Revoke issued tokens matching every given filter (a ``jti``, a tenant GUID or domain, a client
        id); the validator refuses them from now on. Returns how many were revoked."""
        if jti is None and tenant is None and client_id is None:
            raise ValueError("revoke needs jti=, tenant= or client_id=")
        tenant_id: str | None = None
        if tenant is not None:
            found = self.resolve_tenant(tenant)
            tenant_id = found.tenant_id if found is not None else tenant.lower()
        count = 0
        for issued in self.issued:
            if (
                (jti is None or issued.jti == jti)
                and (tenant_id is None or issued.tenant_id == tenant_id)
                and (client_id is None or issued.client_id == client_id.lower())
                and issued.jti not in self._revoked
            ):
                self._revoked.add(issued.jti)
                count += 1
        return count

    def tokens_issued(self, tenant: str | None = None) -> int:
        """Tokens issued, in all or for one tenant (GUID or domain)."""
        if tenant is None:
            return len(self.issued)
        found = self.resolve_tenant(tenant)
        tenant_id = found.tenant_id if found is not None else tenant.lower()
        return sum(1 for issued in self.issued if issued.tenant_id == tenant_id)

    def reset_stats(self) -> None:
        """Forget the counters (issued tokens and revocations stay)."""
        self.token_requests.clear()
        self.claims_requests.clear()
        self.rejections.clear()
        self.accepted = 0

    # -- server --

    server_name = "the identity server"

    @property
    def authority(self) -> str:
        """``https://127.0.0.1:PORT``: pass as ``authority=`` to azure-identity credentials."""
        return self.origin

    @property
    def ca_path(self) -> str:
        """Path of the CA certificate (PEM) that signed the server's: azure-identity's ``connection_verify``."""
        if self._tmpdir is None:
            raise RuntimeError("the identity server is not started")
        return str(Path(self._tmpdir.name) / "identity-ca.pem")

    def client_ssl_context(self) -> ssl.SSLContext:
        """An SSL context that trusts this server (for plain aiohttp clients)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context

    def token_endpoint(self, tenant: str) -> str:
        return f"{self.authority}/{tenant}/oauth2/v2.0/token"

    def _setup(self) -> ssl.SSLContext:
        self._tmpdir = tempfile.TemporaryDirectory(prefix="servicecomms-identity-")
        self._ca.cert_pem.write_to_path(str(Path(self._tmpdir.name) / "identity-ca.pem"))
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        names = dict.fromkeys(("127.0.0.1", "::1", "localhost", self._host))
        self._ca.issue_cert(*names).configure_cert(server_context)
        return server_context

    def _teardown(self) -> None:
        tmpdir, self._tmpdir = self._tmpdir, None
        if tmpdir is not None:
            tmpdir.cleanup()

    def _build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._keys)
        return app

    # -- token endpoint --

    async def _token(self, request: web.Request) -> web.Response:
        named = request.match_info["tenant"]
        tenant = self.resolve_tenant(named)
        self.token_requests[tenant.tenant_id if tenant is not None else named.lower()] += 1
        try:
            form = await self._form(request)
            return self._issue(request, named, tenant, form)
        except _Refused as refused:
            log.debug("token request for tenant %s refused: AADSTS%d", named, refused.code)
            return self._entra_error(refused)

    async def _form(self, request: web.Request) -> Mapping[str, str]:
        if request.content_type != "application/x-www-form-urlencoded":
            raise _Refused(
                400,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    def _issue(
        self,
        request: web.Request,
        named: str,
        tenant: DirectoryTenant | None,
        form: Mapping[str, str],
    ) -> web.Response:
        for required in ("grant_type", "client_id", "scope"):
            if not form.get(required):
                raise _Refused(
                    400,
                    "invalid_request",
                    900144,
                    f"The request body must contain the following parameter: '{required}'.",
                )
        if form["grant_type"] != "client_credentials":
            raise _Refused(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{form['grant_type'][:64]}'.",
            )
        if tenant is None:
            raise _Refused(
                400,
                "invalid_request",
                90002,
                f"Tenant '{named[:100]}' not found. Check to make sure you have the correct tenant ID "
                "and are signing into the correct cloud.",
            )
        client_id = form["client_id"].lower()
        app = self._apps.get(client_id)
        if app is None or not app.consented_in(tenant.tenant_id):
            raise _Refused(
                400,
                "unauthorized_client",
                700016,
                f"Application with identifier '{form['client_id'][:64]}' was not found in the "
                f"directory '{named[:100]}'. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in the "
                "tenant. You may have sent your authentication request to the wrong tenant.",
            )
        app_auth = self._authenticate(request, app, form)
        audience = self._check_scope(form["scope"], named)
        claims = form.get("claims")
        if claims is not None:
            try:
                json.loads(claims)
            except ValueError:
                raise _Refused(
                    400, "invalid_request", 90014, "The required field 'claims' is malformed."
                ) from None
            self.claims_requests.append(claims)
        return self._token_response(tenant, app, app_auth, audience)

    def _authenticate(
        self, request: web.Request, app: RegisteredApp, form: Mapping[str, str]
    ) -> str:
        """Check the client's secret or assertion; return ``appidacr`` ("1" secret, "2" certificate)."""
        secret = form.get("client_secret")
        assertion = form.get("client_assertion")
        if secret:
            if app.secret is None or not hmac.compare_digest(secret.encode(), app.secret.encode()):
                raise _Refused(
                    401,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is "
                    "the client secret value, not the client secret ID, for a secret added to app "
                    f"'{app.client_id}'.",
                )
            return "1"
        if assertion:
            if form.get("client_assertion_type") != JWT_BEARER:
                raise _Refused(
                    401,
                    "invalid_client",
                    50027,
                    "JWT token is invalid or malformed: client_assertion_type must be "
                    f"'{JWT_BEARER}'.",
                )
            self._check_assertion(request, app, assertion)
            return "2"
        raise _Refused(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or "
            "'client_secret'.",
        )

    def _check_assertion(self, request: web.Request, app: RegisteredApp, assertion: str) -> None:
        certificate = self._certificates.get(app.client_id)
        try:
            header, claims, signed, signature = _split_jwt(assertion)
        except ValueError:
            raise _Refused(
                401, "invalid_client", 50027, "JWT token is invalid or malformed."
            ) from None
        thumbprint = header.get("x5t#S256") or header.get("x5t")
        if certificate is None or _unpad(thumbprint) not in (
            _unpad(certificate.sha256),
            _unpad(certificate.sha1),
        ):
            raise _Refused(
                401,
                "invalid_client",
                700027,
                f"Client assertion failed signature validation. Key was not found for app "
                f"'{app.client_id}'.",
            )
        alg = header.get("alg")
        try:
            if alg == "RS256":
                certificate.public_key.verify(
                    signature, signed, padding.PKCS1v15(), hashes.SHA256()
                )
            elif alg == "PS256":
                certificate.public_key.verify(
                    signature,
                    signed,
                    padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO),
                    hashes.SHA256(),
                )
            else:
                raise InvalidSignature
        except InvalidSignature:
            raise _Refused(
                401, "invalid_client", 700027, "Client assertion failed signature validation."
            ) from None
        if str(claims.get("iss", "")).lower() != app.client_id:
            raise _Refused(
                401,
                "invalid_client",
                700021,
                "Client assertion application identifier doesn't match 'client_id' parameter.",
            )
        expected_audience = f"{self.authority}{request.path}"
        if str(claims.get("aud", "")).rstrip("/") != expected_audience.rstrip("/"):
            raise _Refused(
                401,
                "invalid_client",
                700027,
                "Client assertion failed signature validation: the audience is not this token "
                "endpoint.",
            )
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf", 0)
        if (
            not isinstance(exp, (int, float))
            or not isinstance(nbf, (int, float))
            or now >= exp + self.clock_skew
            or now + self.clock_skew < nbf
        ):
            raise _Refused(
                401,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range.",
            )

    def _check_scope(self, scope: str, named: str) -> str:
        """The audience the scope asks for (the legacy API's or Graph's), or an Entra refusal."""
        scopes = scope.split()
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            raise _Refused(
                400,
                "invalid_scope",
                1002012,
                f"The provided value for scope {scope[:200]} is not valid. Client credential flows "
                "must have a scope value with /.default suffixed to the resource identifier "
                "(application ID URI).",
            )
        resource = scopes[0].removesuffix("/.default").rstrip("/")
        if resource == self.audience:
            return resource
        if resource.lower() in GRAPH_AUDIENCES:
            return resource.lower()
        if any(
            resource.lower().startswith(api.lower() + "/")
            for api in (self.audience, *GRAPH_AUDIENCES)
        ):
            raise _Refused(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource[:200]} was not found in the tenant named "
                f"{named[:100]}. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant.",
            )
        raise _Refused(
            400,
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid. The scope "
            f"{scopes[0][:200]} is not valid.",
        )

    def _token_response(
        self, tenant: DirectoryTenant, app: RegisteredApp, app_auth: str, audience: str
    ) -> web.Response:
        lifetime = int(self.token_lifetime)
        if lifetime < 1:
            raise ValueError("token_lifetime must be 1 second or more")
        now = int(self._clock())
        jti = uuid.uuid4().hex
        service_principal = str(uuid.uuid5(uuid.UUID(tenant.tenant_id), app.client_id))
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": app.client_id,
            "appidacr": app_auth,
            "idp": f"https://sts.windows.net/{tenant.tenant_id}/",
            "idtyp": "app",
            "oid": service_principal,
            "sub": service_principal,
            "tid": tenant.tenant_id,
            "ver": "1.0",
            "jti": jti,
        }
        roles = app.roles if audience == self.audience else app.graph_roles
        if roles:
            claims["roles"] = list(roles)
        access_token = self._sign(claims)
        self.issued.append(IssuedToken(jti, tenant.tenant_id, app.client_id, now, now + lifetime))
        log.debug("issued token %s for tenant %s, app %s", jti, tenant.tenant_id, app.client_id)
        body = {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        }
        return web.Response(
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": JSON_TYPE,
                "Cache-Control": "no-store, no-cache",
                "Pragma": "no-cache",
                "x-ms-request-id": str(uuid.uuid4()),
            },
        )

    def _entra_error(self, refused: _Refused) -> web.Response:
        return entra_error(
            refused.status,
            refused.error,
            refused.code,
            refused.description,
            now=self._clock(),
            authority=self.authority,
        )

    # -- discovery --

    async def _openid(self, request: web.Request) -> web.Response:
        named = request.match_info["tenant"]
        tenant = self.resolve_tenant(named)
        issuer_tenant = tenant.tenant_id if tenant is not None else "{tenantid}"
        document = {
            "token_endpoint": self.token_endpoint(named),
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
            ],
            "jwks_uri": f"{self.authority}/{named}/discovery/v2.0/keys",
            "issuer": f"{self.authority}/{issuer_tenant}/v2.0",
            "authorization_endpoint": f"{self.authority}/{named}/oauth2/v2.0/authorize",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": None,
        }
        return web.json_response(document)

    async def _keys(self, request: web.Request) -> web.Response:
        numbers = self._key.public_key().public_numbers()
        key = {
            "kty": "RSA",
            "use": "sig",
            "kid": self._kid,
            "x5t": self._kid,
            "n": b64url_encode(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
            "e": b64url_encode(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
        }
        return web.json_response({"keys": [key]})

    # -- access tokens --

    def _sign(self, claims: Mapping[str, Any]) -> str:
        header = {"typ": "JWT", "alg": "RS256", "x5t": self._kid, "kid": self._kid}
        signed = (
            b64url_encode(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = self._key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
        return signed + "." + b64url_encode(signature)

    def decode(self, token: str) -> dict[str, Any]:
        """The claims of a token this server signed (signature checked, nothing else)."""
        header, claims, signed, signature = _split_jwt(token)
        if header.get("alg") != "RS256" or header.get("kid") != self._kid:
            raise ValueError("not a token signed by this server")
        try:
            self._key.public_key().verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ValueError("invalid signature") from None
        return claims

    async def token_validator(self, tenant: str, token: str) -> web.StreamResponse | None:
        """The emulator's ``token_validator``: ``None`` to accept, else the 401 to send."""
        try:
            self._validate(tenant, token)
        except _Invalid as invalid:
            self.rejections[invalid.reason] += 1
            log.debug("API request for tenant %s refused: %s", tenant, invalid.reason)
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return odata_error(401, invalid.code, invalid.message, **challenge)
        self.accepted += 1
        return None

    def _validate(self, tenant: str, token: str) -> None:
        claims = self._valid_claims(token, (self.audience,))
        url_tenant = self.resolve_tenant(tenant)
        tid = str(claims.get("tid", ""))
        if url_tenant is None or url_tenant.tenant_id != tid:
            raise _Invalid(
                "tenant_mismatch",
                "AF20010",
                f"The tenant ID passed in the URL ({tenant[:100]}) does not match the tenant ID "
                f"passed in the access token ({tid}).",
            )
        roles = claims.get("roles") or []
        if not isinstance(roles, list) or REQUIRED_ROLE not in roles:
            shown = (
                ",".join(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else ""
            )
            raise _Invalid(
                "missing_role",
                "AF10001",
                f"The permission set ({shown}) sent in the request does not include the expected "
                "permission.",
            )

    def _valid_claims(self, token: str, audiences: tuple[str, ...]) -> dict[str, Any]:
        """The claims of a token signed here, in its lifetime, for one of ``audiences``, not revoked."""

        def invalid(reason: str, detail: str) -> _Invalid:
            return _Invalid(
                reason, "InvalidAuthenticationToken", f"Access token validation failure: {detail}."
            )

        try:
            claims = self.decode(token)
        except ValueError as exc:
            if "signature" in str(exc) or "signed" in str(exc):
                raise invalid("signature", "the signature is not valid") from None
            raise invalid("malformed", "the token is not a well-formed JWT") from None
        now = self._clock()
        exp, nbf = claims.get("exp"), claims.get("nbf")
        if not isinstance(exp, (int, float)) or now >= exp + self.clock_skew:
            raise invalid("expired", "Lifetime validation failed, the token is expired")
        if isinstance(nbf, (int, float)) and now + self.clock_skew < nbf:
            raise invalid("not_yet_valid", "Lifetime validation failed, the token is not yet valid")
        if str(claims.get("aud", "")).rstrip("/") not in audiences:
            raise invalid("audience", "the audience is not valid for this API")
        if claims.get("jti") in self._revoked:
            raise invalid("revoked", "the token was revoked")
        return claims

    # -- Microsoft Graph --

    def issue_graph_token(
        self,
        tenant: str,
        *,
        delegated: bool = False,
        permissions: Iterable[str] | None = None,
        user: str = "admin",
        client_id: str | None = None,
    ) -> str:
        """Mint a Microsoft Graph access token for ``tenant`` (a registered GUID or domain) directly,
        as Entra would issue it: ``delegated`` gives a user token with ``scp`` (default
        :data:`GRAPH_DELEGATED_SCOPES`) and the ``oid`` of ``user``; otherwise an application token
        with ``roles`` (default :data:`GRAPH_ROLES`). Lifetime: :attr:`token_lifetime`."""
        found = self.resolve_tenant(tenant)
        if found is None:
            raise ValueError(f"unknown tenant {tenant!r}: add_tenant() it first")
        if not isinstance(user, str) or not user:
            raise ValueError("user must be a non-empty string")
        granted = list(
            permissions
            if permissions is not None
            else (GRAPH_DELEGATED_SCOPES if delegated else GRAPH_ROLES)
        )
        lifetime = int(self.token_lifetime)
        if lifetime < 1:
            raise ValueError("token_lifetime must be 1 second or more")
        client = (client_id or str(uuid.uuid5(uuid.NAMESPACE_URL, "emulator-graph-client"))).lower()
        tenant_uuid = uuid.UUID(found.tenant_id)
        principal = str(uuid.uuid5(tenant_uuid, f"user:{user}" if delegated else client))
        now = int(self._clock())
        jti = uuid.uuid4().hex
        claims: dict[str, Any] = {
            "aud": GRAPH_AUDIENCES[0],
            "iss": f"https://sts.windows.net/{found.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": now + lifetime,
            "appid": client,
            "appidacr": "1",
            "idtyp": "user" if delegated else "app",
            "oid": principal,
            "sub": principal,
            "tid": found.tenant_id,
            "ver": "1.0",
            "jti": jti,
        }
        if delegated:
            claims["scp"] = " ".join(granted)
            claims["name"] = user
        elif granted:
            claims["roles"] = granted
        self.issued.append(IssuedToken(jti, found.tenant_id, client, now, now + lifetime))
        return self._sign(claims)

    async def graph_token_validator(
        self, token: str, permission: str
    ) -> GraphCaller | web.StreamResponse:
        """The emulator's ``graph_token_validator``: the caller to accept, else the Graph error to send."""
        try:
            caller = self._validate_graph(token, permission)
        except _Invalid as invalid:
            self.rejections[invalid.reason] += 1
            log.debug("Graph request refused: %s", invalid.reason)
            challenge = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return graph_error(
                invalid.status,
                invalid.code,
                invalid.message,
                headers=challenge if invalid.status == 401 else None,
            )
        self.accepted += 1
        return caller

    def _validate_graph(self, token: str, permission: str) -> GraphCaller:
        claims = self._valid_claims(token, GRAPH_AUDIENCES)
        tid = str(claims.get("tid", ""))
        app = str(claims.get("appid") or claims.get("azp") or "") or None
        if self.resolve_tenant(tid) is None:
            raise _Invalid(
                "unknown_tenant",
                "InvalidAuthenticationToken",
                "Access token validation failure: the token's tenant is unknown.",
            )
        scp = claims.get("scp")
        delegated = isinstance(scp, str)
        if delegated:
            assert isinstance(scp, str)
            granted = scp.split()
        else:
            roles = claims.get("roles") or []
            granted = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
            if permission in _DELEGATED_ONLY:
                # Let the route say why an application cannot do this (403, delegated only).
                return GraphCaller(tid, False, None, app)
        if permission not in granted:
            kind = "delegated" if delegated else "application"
            raise _Invalid(
                "missing_role",
                "Authorization_RequestDenied",
                f"Insufficient privileges to complete the operation: the {kind} token lacks "
                f"{permission}.",
                status=403,
            )
        user = str(claims.get("oid", "")) if delegated else None
        return GraphCaller(tid, delegated, user or None, app)


def _unpad(value: object) -> str:
    return str(value or "").rstrip("=")


def _b64url_decode(text: str) -> bytes:
    # azure-identity pads its assertions; JWTs should not be padded.
    return b64url_decode(text.rstrip("="))


def _split_jwt(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """Header, claims, the signed bytes and the signature of a compact JWS (no check made)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise ValueError("not a compact JWS")
    try:
        header = json.loads(_b64url_decode(parts[0]))
        claims = json.loads(_b64url_decode(parts[1]))
        signature = _b64url_decode(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise ValueError("not a compact JWS") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a compact JWS")
    return header, claims, (parts[0] + "." + parts[1]).encode("ascii"), signature
