"""Async client for the Office 365 Service Communications API, built for scanning many tenants."""

__version__ = "0.1.0"

from .errors import (
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    ConnectError,
    CredentialError,
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
    TransportError,
    UnauthorizedError,
    UnexpectedResponseError,
)
from .models import (
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
from .paging import AsyncPager, Page
from .retry import RetryPolicy
from .session import ServiceCommsSession
from .tenant import TenantClient
from .transport import Limits, Timeout

__all__ = [
    "APIStatusError",
    "AsyncPager",
    "AuthenticationError",
    "BadRequestError",
    "ConnectError",
    "CredentialError",
    "EndpointRetiredError",
    "Feature",
    "FeatureStatus",
    "ForbiddenError",
    "InvalidFieldError",
    "Limits",
    "Message",
    "MessageHistory",
    "MessageType",
    "NameValue",
    "NotFoundError",
    "Page",
    "PagingError",
    "RequestTimeoutError",
    "ResponseError",
    "RetryPolicy",
    "ServerError",
    "Service",
    "ServiceCommsError",
    "ServiceCommsSession",
    "SessionClosedError",
    "Status",
    "TenantClient",
    "ThrottledError",
    "Timeout",
    "TransportError",
    "UnauthorizedError",
    "UnexpectedResponseError",
    "WorkloadStatus",
    "__version__",
]
