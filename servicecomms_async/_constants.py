"""Every default and limit of the library, in one place, written as the README writes them.

Option objects (:class:`~servicecomms_async.Timeout`, :class:`~servicecomms_async.Limits`,
:class:`~servicecomms_async.RetryPolicy`), the session, the clients, the scan and the command line read
their defaults from here, so a number is never written twice.
"""

from __future__ import annotations

# -- one attempt (Timeout) ---------------------------------------------------------------------------
CONNECT_TIMEOUT = 10.0  # seconds to open the TCP/TLS connection
READ_TIMEOUT = 30.0  # seconds without a byte from the server
TOTAL_TIMEOUT = 60.0  # seconds for one attempt, from asking the pool to the last body byte

# -- retries (RetryPolicy) ---------------------------------------------------------------------------
RETRY_ATTEMPTS = 5  # attempts in all, the first one included
RETRY_DEADLINE = 60.0  # seconds from the first attempt after which no retry starts
BACKOFF_INITIAL = 0.5  # seconds: full jitter over min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (n - 1))
BACKOFF_MAX = 30.0
RETRY_AFTER_CAP = 60.0  # a longer Retry-After stops the retries instead of waiting
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # and 403 AF429 (errors.is_throttling)
THROTTLE_CODE = "AF429"  # the Management API's throttling answer is HTTP 403 with this code

# -- the pool (Limits) ---------------------------------------------------------------------------------
MAX_CONNECTIONS = 100  # raised to a scan's concurrency when that is higher
KEEPALIVE_TIMEOUT = 30.0  # seconds an idle connection is kept

# -- responses -------------------------------------------------------------------------------------------
MAX_BODY_BYTES = 64 * 1024 * 1024  # a larger body is an UnexpectedResponseError
ERROR_BODY_LIMIT = 64 * 1024  # characters of an error body kept on the exception
ERROR_TEXT_LIMIT = 4 * 1024  # characters of any other text an exception keeps (code, message, url)
MAX_PAGES = 10_000  # pages per stream before PagingError
MAX_ITEMS_PER_PAGE = 10_000  # items in one page before UnexpectedResponseError (max_items_per_page)
ITEMS_PER_SLICE = 1_000  # items structured between two yields to the event loop
MAX_NEXT_LINK_LENGTH = 16 * 1024  # characters of an @odata.nextLink before PagingError

# -- paging, per API ------------------------------------------------------------------------------------
LEGACY_PAGE_SIZE = 100  # $top of the legacy /Messages, also its documented maximum
LEGACY_MAX_PAGE_SIZE = 100
GRAPH_MAX_PAGE_SIZE = 1000  # Prefer: odata.maxpagesize on Graph's issues and messages
GRAPH_MAX_IDS_PER_ACTION = 100  # viewpoint actions are sent in chunks of this many message ids

# -- scans ------------------------------------------------------------------------------------------------
SCAN_CONCURRENCY = 50  # tenants at once
SCAN_MIN_BUFFER = 64  # result slots: max(SCAN_MIN_BUFFER, concurrency)
SCAN_PROGRAMMING_ERROR_TENANTS = (
    3  # the same AttributeError/TypeError from the first N tenants stops a scan
)

# -- tokens ------------------------------------------------------------------------------------------------
TOKEN_REFRESH_MARGIN = 300.0  # seconds before expiry at which a cached token is refreshed
TOKEN_REFRESH_JITTER = 60.0  # plus up to this many seconds, at random
TOKEN_RETRY_REFRESH_WITHIN = (
    30.0  # a refresh that could not replace a still-valid token is retried this soon
)
TOKEN_REFUSED_AGAIN_WINDOW = (
    30.0  # a token that replaced a refused one is not dropped again this soon
)

# -- hardening: token acquisition and credentials --------------------------------------------------------
TOKEN_TIMEOUT = (
    30.0  # seconds a credential may take to answer (capped by what is left of the deadline)
)
TOKEN_SYNC_THREADS = 8  # worker threads running synchronous credentials at once, hung ones included
CREDENTIAL_CLOSE_TIMEOUT = 10.0  # seconds aclose() waits for the credentials it made to close
CREDENTIAL_IDLE_TIMEOUT = (
    300.0  # seconds a factory-made credential stays open without a token request
)
CREDENTIAL_MAX_OPEN = (
    256  # factory-made credentials open at once; the least recently used close first
)
TOKEN_PRUNE_INTERVAL = 60.0  # seconds between sweeps of expired tokens out of the cache

# The legacy operations rebuilt over Microsoft Graph (servicecomms_async.over_graph).
OVER_GRAPH_CURRENT_HOURS = 24  # CurrentStatus: issues unresolved or ended within this many hours
OVER_GRAPH_HISTORY_DAYS = 7  # HistoricalStatus without since: today and the 6 days before it

# Watch delivery (servicecomms_async.watch.outbox): tries per event and sink, and how long a run
# waits for retries before leaving the rest pending.
DELIVERY_ATTEMPTS = 8
DELIVERY_TIMEOUT = 60.0
