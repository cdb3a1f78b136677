"""Async client for Microsoft 365 service health: Microsoft Graph's service communications API and
the legacy Office 365 Service Communications API, built for scanning many tenants."""

from ._config import Limits, Timeout
from ._version import __version__
from .clouds import Cloud
from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    CredentialError,
    DelegatedPermissionRequiredError,
    EndpointRetiredError,
    ForbiddenError,
    InvalidFieldError,
    NotFoundError,
    PagingError,
    RequestTimeoutError,
    ResponseError,
    ServerError,
    ServiceCommsError,
    SessionClosedError,
    ThrottledError,
    TLSError,
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from .graph import GraphClient
from .legacy import TenantClient
from .legacy.models import (
    Feature,
    FeatureStatus,
    Message,
    MessageHistory,
    MessageType,
    NameValue,
    Service,
    Status,
    WorkloadStatus,
)
from .over_graph import LegacyOverGraphClient, ObservedHistory
from .paging import AsyncPager, Page
from .retry import RetryPolicy
from .scan import Scan, ScanItem, ScanProgress, ScanResult, TenantDone, TenantFailed
from .session import ServiceCommsSession
from .sharding import Shard

__all__ = [
    "APIStatusError",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "Cloud",
    "ConnectError",
    "CredentialError",
    "DelegatedPermissionRequiredError",
    "EndpointRetiredError",
    "Feature",
    "FeatureStatus",
    "ForbiddenError",
    "GraphClient",
    "InvalidFieldError",
    "LegacyOverGraphClient",
    "Limits",
    "Message",
    "MessageHistory",
    "MessageType",
    "NameValue",
    "NotFoundError",
    "ObservedHistory",
    "Page",
    "PagingError",
    "RequestTimeoutError",
    "ResponseError",
    "RetryPolicy",
    "Scan",
    "ScanItem",
    "ScanProgress",
    "ScanResult",
    "ServerError",
    "Service",
    "ServiceCommsError",
    "ServiceCommsSession",
    "SessionClosedError",
    "Shard",
    "Status",
    "TLSError",
    "TenantClient",
    "TenantDone",
    "TenantFailed",
    "ThrottledError",
    "Timeout",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "WorkloadStatus",
    "__version__",
]
