"""The Graph API rules both hooks share: settings, request building, response parsing, the error
taxonomy and the retry/rate-limit policy.

Nothing here performs I/O, so the synchronous hook (requests) and the asynchronous hook (aiohttp)
differ only in how they send bytes and sleep; every decision is made once, here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

DEFAULT_BASE_URL = "https://graph.facebook.com"
DEFAULT_API_VERSION = "v25.0"
ITEM_TYPE = "PRODUCT_ITEM"
API_VERSION_PATTERN = re.compile(r"^v\d+\.\d+$")

#: Status values of check_batch_request_status after which a handle never changes again.
FINAL_BATCH_STATUSES = frozenset({"finished", "canceled", "error"})
#: Final statuses that mean the batch did not complete (items may not have been applied).
FAILED_BATCH_STATUSES = frozenset({"canceled", "error"})

TRANSIENT_ERROR_CODES = frozenset({1, 2})
THROTTLING_ERROR_CODES = frozenset({4, 17, 32, 613, 80004, 80009, 80014})
PERMANENT_ERROR_CODES = frozenset({100, 190, 200, 368})

#: How many error/warning samples and invalid ids a status keeps; Meta's totals stay exact.
MAX_SAMPLES = 20
MAX_INVALID_IDS = 1000

_PERMANENT_HINTS: dict[int, str] = {
    190: (
        "The access token is invalid or expired: create a new system-user token and store it as "
        "the password of the Airflow connection."
    ),
    200: (
        "The token lacks the catalog_management permission on catalog {catalog_id}: assign the "
        "system user to this catalog with 'Manage catalog' and generate the token with "
        "catalog_management."
    ),
    100: (
        "Meta rejected a parameter: check that catalog {catalog_id} exists and that the "
        "connection's api_version ({api_version}) is supported."
    ),
    368: (
        "Meta blocked this action as abusive: check the business account's status in Meta "
        "Business Support Home before retrying."
    ),
}
_TOO_MUCH_DATA = "reduce the amount of data"


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------
class GraphApiConfigurationError(ValueError):
    """The Airflow connection or the arguments do not describe a usable catalog endpoint."""


class MissingCatalogIdError(GraphApiConfigurationError):
    """Neither the caller nor the connection's ``catalog_id`` extra names a catalog."""


#: What the connection test says when the connection names no catalog: the test checks a
#: connection, so the fix is on the connection (the API server tests it under a random id).
MISSING_CATALOG_ID_ON_CONNECTION = (
    "No catalog id: set the Catalog ID field (extra 'catalog_id') on this connection "
    "to the catalog id from Commerce Manager, e.g. 1234567890."
)


@dataclass(frozen=True)
class GraphApiSettings:
    """Everything needed to call one catalog. The token and app secret never appear in its repr."""

    base_url: str
    api_version: str
    catalog_id: str
    access_token: str = field(repr=False)
    app_secret: str | None = field(default=None, repr=False)

    @property
    def catalog_url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.catalog_id}"

    @property
    def items_batch_url(self) -> str:
        return f"{self.catalog_url}/items_batch"

    @property
    def batch_status_url(self) -> str:
        return f"{self.catalog_url}/check_batch_request_status"

    @property
    def products_url(self) -> str:
        return f"{self.catalog_url}/products"

    @property
    def diagnostics_url(self) -> str:
        return f"{self.catalog_url}/diagnostics"

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.access_token, self.app_secret, self.appsecret_proof) if s)

    @property
    def appsecret_proof(self) -> str | None:
        if not self.app_secret:
            return None
        return appsecret_proof(self.access_token, self.app_secret)


def appsecret_proof(access_token: str, app_secret: str) -> str:
    """Hex HMAC-SHA256 of the access token keyed by the app secret, as Meta's SDK computes it."""
    return hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()


def settings_from_connection(
    *,
    conn_id: str,
    host: str | None,
    password: str | None,
    extra: Mapping[str, Any],
    catalog_id: str | None = None,
) -> GraphApiSettings:
    """Build settings from the connection contract (DESIGN.md), failing with what to fix."""
    extra = {(key.removeprefix("extra__facebook_catalog__")): value for key, value in extra.items() if value}
    token = (password or "").strip()
    if not token:
        raise GraphApiConfigurationError(
            f"Connection {conn_id!r} has no access token: put the system-user token in its password."
        )
    resolved_catalog = str(catalog_id or extra.get("catalog_id") or "").strip()
    if not resolved_catalog:
        raise MissingCatalogIdError(
            f"No catalog id: pass catalog_id to the operator or set extra 'catalog_id' on connection "
            f"{conn_id!r}."
        )
    if not resolved_catalog.isdigit():
        raise GraphApiConfigurationError(
            f"Catalog id {resolved_catalog!r} is not numeric: use the id shown in Commerce Manager."
        )
    version = str(extra.get("api_version") or DEFAULT_API_VERSION).strip()
    if not version.startswith("v"):
        version = f"v{version}"
    if not API_VERSION_PATTERN.match(version):
        raise GraphApiConfigurationError(
            f"api_version {version!r} on connection {conn_id!r} is not of the form v25.0."
        )
    base_url = (host or extra.get("base_url") or DEFAULT_BASE_URL).strip().rstrip("/")
    if "://" not in base_url:
        base_url = f"https://{base_url}"
    app_secret = str(extra.get("app_secret") or "").strip() or None
    return GraphApiSettings(
        base_url=base_url,
        api_version=version,
        catalog_id=resolved_catalog,
        access_token=token,
        app_secret=app_secret,
    )


# --------------------------------------------------------------------------------------------
# Request building
# --------------------------------------------------------------------------------------------
def auth_headers(settings: GraphApiSettings) -> dict[str, str]:
    """The token travels in a header, never in a URL that could be logged."""
    return {"Authorization": f"Bearer {settings.access_token}"}


def items_batch_form(settings: GraphApiSettings, payload: bytes) -> list[tuple[str, str | bytes]]:
    """Form fields of one items_batch call; ``payload`` is the encoded ``requests`` JSON array.

    Sent as multipart/form-data, so non-ASCII text is not percent-encoded (which would triple it).
    """
    fields: list[tuple[str, str | bytes]] = [
        ("item_type", ITEM_TYPE),
        ("allow_upsert", "true"),
        ("requests", payload),
    ]
    proof = settings.appsecret_proof
    if proof:
        fields.append(("appsecret_proof", proof))
    return fields


def batch_status_params(settings: GraphApiSettings, handle: str) -> dict[str, str]:
    params = {"handle": handle, "load_ids_of_invalid_requests": "true"}
    proof = settings.appsecret_proof
    if proof:
        params["appsecret_proof"] = proof
    return params


def catalog_params(settings: GraphApiSettings) -> dict[str, str]:
    params = {"fields": "id,name,product_count"}
    proof = settings.appsecret_proof
    if proof:
        params["appsecret_proof"] = proof
    return params


# ------------------------------------------------------------------ reading the catalog back
#: The products edge's read names of feed fields (``fields=name`` reads what the feed sent as title).
READ_NAMES_OF_FEED_FIELDS = {"title": "name", "link": "url", "image_link": "image_url"}
#: What Meta's review shows about an item: enough to record its rejection.
REVIEW_FIELDS = ("retailer_id", "review_status", "errors")
#: An item's content as the feed sent it, under the products edge's read names, with its review.
CATALOG_READ_FIELDS = (
    "id",
    "retailer_id",
    "name",
    "description",
    "price",
    "sale_price",
    "availability",
    "condition",
    "url",
    "image_url",
    "brand",
    "review_status",
    "errors",
)
#: Items a page asks for (Meta's default is 25; fewer, larger pages spend less of the budget).
DEFAULT_PRODUCTS_PAGE_SIZE = 500
#: A retailer_id filter names at most this many ids, and its JSON at most this many characters,
#: so the GET's URL stays well within what servers accept (8 KiB request lines are common).
RETAILER_ID_FILTER_MAX_IDS = 200
RETAILER_ID_FILTER_MAX_CHARS = 3000
_CREDENTIAL_PARAMS = frozenset({"access_token", "appsecret_proof"})


def products_params(
    settings: GraphApiSettings,
    fields: Iterable[str],
    *,
    product_filter: str | None = None,
    limit: int = DEFAULT_PRODUCTS_PAGE_SIZE,
    after: str | None = None,
) -> dict[str, str]:
    """Query of one products page; ``product_filter`` is Meta's JSON filter, already encoded."""
    params = {"fields": ",".join(fields), "limit": str(limit)}
    if product_filter:
        params["filter"] = product_filter
    if after:
        params["after"] = after
    proof = settings.appsecret_proof
    if proof:
        params["appsecret_proof"] = proof
    return params


def diagnostics_params(settings: GraphApiSettings) -> dict[str, str]:
    params: dict[str, str] = {}
    proof = settings.appsecret_proof
    if proof:
        params["appsecret_proof"] = proof
    return params


def retailer_id_filters(
    retailer_ids: Iterable[str],
    *,
    max_ids: int = RETAILER_ID_FILTER_MAX_IDS,
    max_chars: int = RETAILER_ID_FILTER_MAX_CHARS,
) -> Iterator[str]:
    """``{"retailer_id": {"is_any": [...]}}`` filters that together name every id once."""
    chunk: list[str] = []
    size = 0
    for retailer_id in dict.fromkeys(str(r) for r in retailer_ids):
        cost = len(json.dumps(retailer_id)) + 1
        if chunk and (len(chunk) >= max_ids or size + cost > max_chars):
            yield _is_any_filter(chunk)
            chunk, size = [], 0
        chunk.append(retailer_id)
        size += cost
    if chunk:
        yield _is_any_filter(chunk)


def _is_any_filter(retailer_ids: list[str]) -> str:
    return json.dumps({"retailer_id": {"is_any": retailer_ids}}, separators=(",", ":"))


@dataclass(frozen=True)
class ProductsPage:
    """One page of the products edge: its items and where the next page is (None: last page)."""

    items: list[dict[str, Any]]
    after: str | None
    next_url: str | None


def parse_products_page(body: Any) -> ProductsPage:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise GraphApiResponseError(
            f"products answered without a 'data' list: {str(body)[:200]}", endpoint="products"
        )
    paging: dict[str, Any] = body.get("paging") or {}
    if not isinstance(paging, dict):
        paging = {}
    cursors: dict[str, Any] = paging.get("cursors") or {}
    if not isinstance(cursors, dict):
        cursors = {}
    after = cursors.get("after")
    next_url = paging.get("next")
    return ProductsPage(
        items=[item for item in data if isinstance(item, dict)],
        after=str(after) if after else None,
        next_url=str(next_url) if next_url else None,
    )


def parse_diagnostics(body: Any) -> list[dict[str, Any]]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise GraphApiResponseError(
            f"diagnostics answered without a 'data' list: {str(body)[:200]}", endpoint="diagnostics"
        )
    return [group for group in data if isinstance(group, dict)]


class ProductsCursor:
    """One paged read of the products edge: the request of each page, from the page before.

    It follows ``paging.next`` when that URL is on the connection's host (the token travels in a
    header, so a URL elsewhere is never called), else the ``after`` cursor; no ``next``: done.
    """

    def __init__(
        self,
        settings: GraphApiSettings,
        fields: Iterable[str],
        *,
        product_filter: str | None = None,
        page_size: int = DEFAULT_PRODUCTS_PAGE_SIZE,
    ) -> None:
        self.settings = settings
        self.params = products_params(settings, fields, product_filter=product_filter, limit=page_size)
        self._seen_after: set[str] = set()

    def first_request(self) -> tuple[str, dict[str, str]]:
        return self.settings.products_url, dict(self.params)

    def next_request(self, page: ProductsPage) -> tuple[str, dict[str, str]] | None:
        if page.next_url is None or page.after in self._seen_after:
            return None  # the last page (or a cursor that does not move, which would never end)
        if page.after is not None:
            self._seen_after.add(page.after)
        parts = urlsplit(page.next_url)
        home = urlsplit(self.settings.base_url)
        if (parts.scheme, parts.netloc) == (home.scheme, home.netloc):
            params = {
                k: v for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _CREDENTIAL_PARAMS
            }
            proof = self.settings.appsecret_proof
            if proof:
                params["appsecret_proof"] = proof
            return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), params
        if page.after is None:
            return None
        return self.settings.products_url, {**self.params, "after": page.after}


@dataclass(frozen=True)
class MetaItemError:
    """One error Meta shows on a stored item (ProductItemError): its text and, when given, its type."""

    message: str
    code: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"message": self.message, "code": self.code}


def item_errors(item: Mapping[str, Any]) -> list[MetaItemError]:
    """The errors of one products-edge item, read liberally (title/description or message)."""
    found: list[MetaItemError] = []
    for entry in item.get("errors") or []:
        if isinstance(entry, str):
            found.append(MetaItemError(entry))
            continue
        if not isinstance(entry, dict):
            continue
        title = str(entry.get("title") or "").strip()
        detail = str(entry.get("description") or entry.get("message") or "").strip()
        message = f"{title}: {detail}" if title and detail and detail != title else (title or detail)
        code = entry.get("error_type") or entry.get("code")
        found.append(
            MetaItemError(message or "Meta shows an error on this item", str(code) if code else None)
        )
    return found


# --------------------------------------------------------------------------------------------
# Error taxonomy
# --------------------------------------------------------------------------------------------
class FacebookCatalogError(Exception):
    """Base class of every error this provider raises about Meta's side."""


class GraphApiError(FacebookCatalogError):
    """An error answer (or no answer) from the Graph API, with Meta's fields kept apart."""

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        subcode: int | None = None,
        error_type: str | None = None,
        fbtrace_id: str | None = None,
        http_status: int | None = None,
        endpoint: str = "",
        hint: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.meta_message = message
        self.code = code
        self.subcode = subcode
        self.error_type = error_type
        self.fbtrace_id = fbtrace_id
        self.http_status = http_status
        self.endpoint = endpoint
        self.hint = hint
        self.retry_after = retry_after
        self.attempts = 1
        super().__init__(self._describe())

    def _describe(self) -> str:
        what = f"Graph API error {self.code}" if self.code is not None else "Graph API call failed"
        details = ", ".join(
            part
            for part in (
                self.error_type,
                f"subcode {self.subcode}" if self.subcode else "",
                f"HTTP {self.http_status}" if self.http_status else "",
            )
            if part
        )
        text = f"{what} ({details})" if details else what
        if self.endpoint:
            text += f" on {self.endpoint}"
        text += f": {self.meta_message}"
        if self.hint:
            text += f" {self.hint}"
        if self.fbtrace_id:
            text += f" [fbtrace_id={self.fbtrace_id}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form for trigger events, XCom and reports (holds no secret)."""
        return {
            "kind": type(self).__name__,
            "message": str(self),
            "meta_message": self.meta_message,
            "code": self.code,
            "subcode": self.subcode,
            "type": self.error_type,
            "fbtrace_id": self.fbtrace_id,
            "http_status": self.http_status,
        }


class TransientGraphApiError(GraphApiError):
    """Meta's side failed in a way that may pass: code 1/2, HTTP 5xx, timeouts, resets."""

    retryable = True


class ThrottledGraphApiError(GraphApiError):
    """Meta throttled the app, user or catalog; ``retry_after`` is Meta's estimate in seconds."""

    retryable = True


class PermanentGraphApiError(GraphApiError):
    """Retrying cannot help: the request, token or permissions must be fixed."""


class GraphApiResponseError(PermanentGraphApiError):
    """A 2xx answer that does not have the shape Meta documents."""


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def error_from_response(
    *,
    http_status: int,
    body: str,
    headers: Mapping[str, str],
    endpoint: str,
    settings: GraphApiSettings,
) -> GraphApiError:
    """Turn a non-2xx answer into the right exception class, with a hint on what to do."""
    body = redact(body, settings.secrets)
    try:
        error = json.loads(body).get("error") or {}
        if not isinstance(error, dict):
            error = {}
    except (ValueError, AttributeError):
        error = {}
    code = _as_int(error.get("code"))
    message = str(error.get("message") or body[:300] or f"HTTP {http_status} with an empty body")
    common: dict[str, Any] = {
        "code": code,
        "subcode": _as_int(error.get("error_subcode")),
        "error_type": error.get("type"),
        "fbtrace_id": error.get("fbtrace_id"),
        "http_status": http_status,
        "endpoint": endpoint,
    }
    if code in THROTTLING_ERROR_CODES:
        wait = retry_after_from_headers(headers, settings.catalog_id)
        return ThrottledGraphApiError(
            message,
            hint=(
                "Meta is throttling calls"
                + (f"; it estimates access returns in {wait:.0f} s." if wait else ".")
            ),
            retry_after=wait,
            **common,
        )
    if code == 1 and _TOO_MUCH_DATA in message.lower():
        return PermanentGraphApiError(
            message,
            hint="The payload is too large for Meta: lower max_payload_bytes on the operator.",
            **common,
        )
    if code in TRANSIENT_ERROR_CODES or error.get("is_transient") is True or http_status >= 500:
        return TransientGraphApiError(message, **common)
    hint_template = _PERMANENT_HINTS.get(code or 0, "")
    if not hint_template and code is not None and 200 <= code <= 299:
        hint_template = _PERMANENT_HINTS[200]
    hint = hint_template.format(catalog_id=settings.catalog_id, api_version=settings.api_version)
    return PermanentGraphApiError(message, hint=hint, **common)


def retry_after_from_headers(headers: Mapping[str, str], catalog_id: str) -> float | None:
    """Seconds Meta asks us to wait: the longer of Retry-After and the catalog's usage estimate.

    ``X-Business-Use-Case-Usage`` gives ``estimated_time_to_regain_access`` in MINUTES, per object
    id; the catalog's own entry is preferred, else the largest estimate present.
    """
    waits: list[float] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        waits.append(max(0.0, _as_float(retry_after)))
    usage = _header(headers, "X-Business-Use-Case-Usage")
    if usage:
        try:
            parsed = json.loads(usage)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            entries = parsed.get(catalog_id) or [e for v in parsed.values() if isinstance(v, list) for e in v]
            minutes = [
                _as_float(entry.get("estimated_time_to_regain_access"))
                for entry in entries
                if isinstance(entry, dict)
            ]
            waits.extend(60.0 * m for m in minutes if m)
    positive = [w for w in waits if w > 0]
    return max(positive) if positive else None


def connection_error(exc: BaseException, endpoint: str, settings: GraphApiSettings) -> GraphApiError:
    """A timeout or a dropped connection: transient, described without the URL's query."""
    detail = redact(str(exc) or type(exc).__name__, settings.secrets)
    return TransientGraphApiError(
        f"{type(exc).__name__}: {detail}" if str(exc) else type(exc).__name__,
        endpoint=endpoint,
        hint=f"(no answer from {settings.base_url})",
    )


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return value


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _as_float(value: Any) -> float:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return 0.0
    return result if math.isfinite(result) else 0.0


# --------------------------------------------------------------------------------------------
# Retry policy
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraphApiRetryPolicy:
    """How long to keep trying. Transient errors back off exponentially with jitter; throttling
    waits as long as Meta says (capped by ``max_throttle_wait``), else backs off too.
    """

    max_transient_retries: int = 5
    max_throttled_retries: int = 8
    backoff_base: float = 2.0
    backoff_max: float = 120.0
    max_throttle_wait: float = 900.0

    def __post_init__(self) -> None:
        if self.max_transient_retries < 0 or self.max_throttled_retries < 0:
            raise ValueError("retry counts must be >= 0")
        if self.backoff_base < 0 or self.backoff_max < 0 or self.max_throttle_wait < 0:
            raise ValueError("wait times must be >= 0")

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """Exponential backoff with 'equal jitter': half fixed, half random, so calls spread."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** max(0, retry_number - 1)))
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

    def start(self, deadline: float | None = None) -> RetryState:
        return RetryState(self, deadline)

    def to_dict(self) -> dict[str, float]:
        return {
            "max_transient_retries": self.max_transient_retries,
            "max_throttled_retries": self.max_throttled_retries,
            "backoff_base": self.backoff_base,
            "backoff_max": self.backoff_max,
            "max_throttle_wait": self.max_throttle_wait,
        }


class RetryState:
    """Counts the retries of one logical call and says how long to wait before the next one."""

    def __init__(self, policy: GraphApiRetryPolicy, deadline: float | None = None) -> None:
        self.policy = policy
        self.deadline = deadline
        self.transient_retries = 0
        self.throttled_retries = 0

    def next_delay(self, error: GraphApiError, now: float | None = None) -> float | None:
        """Seconds to wait before retrying, or None when the error must be raised."""
        policy = self.policy
        error.attempts = self.transient_retries + self.throttled_retries + 1
        if isinstance(error, ThrottledGraphApiError):
            if self.throttled_retries >= policy.max_throttled_retries:
                return None
            self.throttled_retries += 1
            if error.retry_after:
                delay = min(error.retry_after, policy.max_throttle_wait)
            else:
                delay = min(policy.backoff(self.throttled_retries), policy.max_throttle_wait)
        elif isinstance(error, TransientGraphApiError):
            if self.transient_retries >= policy.max_transient_retries:
                return None
            self.transient_retries += 1
            delay = policy.backoff(self.transient_retries)
        else:
            return None
        if self.deadline is not None and (now if now is not None else time.time()) + delay > self.deadline:
            return None
        return delay


class CallPacer:
    """Spaces items_batch calls to Meta's Catalog Batch budget, learned from its first refusal.

    Meta answers a call over budget with 80014 and the time until the budget's window frees a
    call. At that first refusal every call accepted so far lies in the window (a run bursts),
    so their number is the budget and ``refusal time + wait - first call`` is the window. From
    then on a call waits until fewer than ``budget`` calls lie in the last ``window`` seconds, so
    a run of any length is refused about once instead of once per window. A later refusal (the
    budget shrank, or the estimate was off) tightens both.
    """

    #: Seconds added to each computed wait, for clock granularity on either side.
    MARGIN = 0.01

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.accepted: deque[float] = deque(maxlen=100_000)
        self.budget: int | None = None
        self.window: float | None = None

    def _accepted_since(self, start: float) -> list[float]:
        return [t for t in self.accepted if t > start]

    def wait_before_call(self) -> float:
        if self.budget is None or self.window is None:
            return 0.0
        now = self.clock()
        in_window = self._accepted_since(now - self.window)
        if len(in_window) < self.budget:
            return 0.0
        return max(0.0, in_window[-self.budget] + self.window - now + self.MARGIN)

    def record_accepted(self) -> None:
        self.accepted.append(self.clock())

    def record_refusal(self, retry_after: float | None) -> None:
        if not retry_after or not self.accepted:
            return
        now = self.clock()
        if self.budget is None or self.window is None:
            self.budget = len(self.accepted)
            self.window = now + retry_after - self.accepted[0]
            return
        in_window = self._accepted_since(now - self.window)
        if in_window:
            self.budget = max(1, min(self.budget, len(in_window)))
            self.window = max(self.window, now + retry_after - in_window[0])


# --------------------------------------------------------------------------------------------
# Responses
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ItemsBatchResponse:
    """What Meta answered to one items_batch call."""

    handle: str | None
    validation_status: list[dict[str, Any]]
    request_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "request_count": self.request_count,
            "validation_status": self.validation_status[:MAX_SAMPLES],
            "validation_status_count": len(self.validation_status),
        }


@dataclass(frozen=True)
class BatchStatus:
    """One handle's state as check_batch_request_status reports it."""

    handle: str
    status: str
    errors_total_count: int = 0
    warnings_total_count: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    ids_of_invalid_requests: list[str] = field(default_factory=list)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BATCH_STATUSES

    @property
    def failed(self) -> bool:
        return self.status in FAILED_BATCH_STATUSES

    def to_dict(self) -> dict[str, Any]:
        return {
            "handle": self.handle,
            "status": self.status,
            "errors_total_count": self.errors_total_count,
            "warnings_total_count": self.warnings_total_count,
            "errors": self.errors,
            "warnings": self.warnings,
            "ids_of_invalid_requests": self.ids_of_invalid_requests,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BatchStatus:
        return cls(
            handle=str(data["handle"]),
            status=str(data["status"]).lower(),
            errors_total_count=int(data.get("errors_total_count") or 0),
            warnings_total_count=int(data.get("warnings_total_count") or 0),
            errors=list(data.get("errors") or []),
            warnings=list(data.get("warnings") or []),
            ids_of_invalid_requests=[str(i) for i in data.get("ids_of_invalid_requests") or []],
        )


def parse_items_batch_response(body: Any, request_count: int) -> ItemsBatchResponse:
    if not isinstance(body, dict) or not isinstance(body.get("handles", []), list):
        raise GraphApiResponseError(
            f"items_batch answered without a 'handles' list: {str(body)[:200]}", endpoint="items_batch"
        )
    handles = [str(h) for h in body.get("handles") or [] if h]
    validation = body.get("validation_status") or []
    return ItemsBatchResponse(
        handle=handles[0] if handles else None,
        validation_status=[v for v in validation if isinstance(v, dict)],
        request_count=request_count,
    )


def parse_batch_status_response(body: Any, handle: str) -> BatchStatus:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise GraphApiResponseError(
            f"check_batch_request_status for handle {handle} answered without data: {str(body)[:200]}",
            endpoint="check_batch_request_status",
        )
    entry = data[0]
    return BatchStatus(
        handle=str(entry.get("handle") or handle),
        status=str(entry.get("status") or "").lower(),
        errors_total_count=_as_int(entry.get("errors_total_count")) or 0,
        warnings_total_count=_as_int(entry.get("warnings_total_count")) or 0,
        errors=list(entry.get("errors") or [])[:MAX_SAMPLES],
        warnings=list(entry.get("warnings") or [])[:MAX_SAMPLES],
        ids_of_invalid_requests=[str(i) for i in entry.get("ids_of_invalid_requests") or []][
            :MAX_INVALID_IDS
        ],
    )


def parse_json_body(text: str, endpoint: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GraphApiResponseError(
            f"{endpoint} answered with a body that is not JSON: {text[:200]!r}", endpoint=endpoint
        ) from exc


# ------------------------------------------------------------------ waiting


class BatchStatusWait:
    """One wait for items_batch handles: the final statuses so far, and how each round ends it.

    The trigger and the operator's ``deferrable=False`` path both decide through it; they differ
    only in how they read the statuses (aiohttp or requests) and how they sleep between rounds.
    """

    def __init__(self, catalog_id: str, handles: list[str], deadline: float) -> None:
        self.catalog_id = catalog_id
        self.handles = handles
        self.deadline = deadline
        self.final: dict[str, BatchStatus] = {}
        self.pending = list(dict.fromkeys(handles))
        self._seconds_left = deadline - time.time()

    def keep(self, statuses: Iterable[BatchStatus]) -> None:
        """Note statuses read in this round; the final ones stop being polled after it."""
        for status in statuses:
            if status.is_final:
                self.final[status.handle] = status

    def end_round(self) -> dict[str, Any] | None:
        """The event the wait ends with after this round, or None to poll again."""
        self.pending = [h for h in self.pending if h not in self.final]
        if not self.pending:
            return batches_success_event(
                self.catalog_id, self.handles, [self.final[h] for h in dict.fromkeys(self.handles)]
            )
        self._seconds_left = self.deadline - time.time()
        if self._seconds_left <= 0:
            message = (
                f"Meta did not finish {len(self.pending)} of {len(self.handles)} batches before the "
                f"deadline; still pending: {', '.join(self.pending)}"
            )
            return self._error_event("deadline", message, None)
        return None

    def next_round_in(self, poll_interval: float) -> float:
        """Seconds to sleep before the next round: the poll interval, cut short by the deadline."""
        return min(poll_interval, self._seconds_left)

    def failed(self, error: PermanentGraphApiError) -> dict[str, Any]:
        """The event when Meta answers with a permanent error: polling again cannot help."""
        return self._error_event("graph_api_error", str(error), error)

    def _error_event(self, reason: str, message: str, error: GraphApiError | None) -> dict[str, Any]:
        return batches_error_event(
            self.catalog_id, self.handles, reason, message, self.final, self.pending, error
        )


def batches_success_event(catalog_id: str, handles: list[str], statuses: list[BatchStatus]) -> dict[str, Any]:
    """Every handle reached a final status (which may be ``error`` or ``canceled``)."""
    return {
        "status": "success",
        "catalog_id": catalog_id,
        "handles": list(handles),
        "batches": [s.to_dict() for s in statuses],
    }


def batches_error_event(
    catalog_id: str,
    handles: list[str],
    reason: str,
    message: str,
    final: dict[str, BatchStatus],
    pending: list[str],
    error: GraphApiError | None,
) -> dict[str, Any]:
    """The wait failed: the deadline passed or Meta answered with a permanent error."""
    return {
        "status": "error",
        "reason": reason,
        "message": message,
        "catalog_id": catalog_id,
        "handles": list(handles),
        "pending_handles": list(pending),
        "batches": [s.to_dict() for s in final.values()],
        "error": error.to_dict() if error else None,
    }


# ------------------------------------------------------------------ Meta's review of sent items
#: The review_status of an item Meta has not finished reviewing. Any other value ("" included:
#: catalogs whose items are not reviewed show none) means the review is over.
REVIEW_PENDING = "pending"
REVIEW_REJECTED = "rejected"
#: Error priorities that make an item rejected; MEDIUM and LOW errors are advice, not refusals
#: (Meta's partner guide polls ``error_priority=HIGH``). An error without a priority counts.
REJECTING_PRIORITIES = frozenset({"HIGH", ""})
#: Rejections, unreviewed and missing ids an event carries as samples (the counts stay exact).
REVIEW_SAMPLES = 20


def review_rejection(item: Mapping[str, Any]) -> MetaItemError | None:
    """Why Meta rejected a stored item (its first rejecting error), or None if it did not."""
    errors = [
        error
        for entry, error in zip(item.get("errors") or [], item_errors(item), strict=False)
        if not isinstance(entry, dict)
        or str(entry.get("error_priority") or "").upper() in REJECTING_PRIORITIES
    ]
    if errors:
        return errors[0]
    if str(item.get("review_status") or "").lower() == REVIEW_REJECTED:
        return MetaItemError("Meta's review rejected this item (it shows no error text)")
    return None


class ItemReviewWait:
    """One wait for Meta's review of a run's items: what the rounds found, and when it ends.

    Each round reads the still-pending ids (``retailer_id`` filter, :data:`REVIEW_FIELDS`). An
    item is done when its review_status is not "pending"; it is rejected when it shows a
    rejecting error or review_status "rejected". An id a complete round does not return is
    ``missing`` (Meta does not hold it: the reconcile's business, not this wait's). When the
    deadline passes, the ids still pending are ``unreviewed``: they count as confirmed now.
    The trigger and the operator's in-worker path decide through it, like :class:`BatchStatusWait`.
    """

    def __init__(
        self,
        catalog_id: str,
        retailer_ids: Iterable[str],
        deadline: float,
        *,
        rejected: Mapping[str, Mapping[str, Any]] | None = None,
        checked: int | None = None,
        missing: int = 0,
    ) -> None:
        self.catalog_id = catalog_id
        self.pending = list(dict.fromkeys(str(i) for i in retailer_ids))
        self.deadline = deadline
        self.rejected: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (rejected or {}).items()}
        self.checked = len(self.pending) + len(self.rejected) if checked is None else checked
        self.missing = missing
        self.rounds = 0
        self._seen: set[str] = set()
        self._still_pending: set[str] = set()

    def keep(self, items: Iterable[Mapping[str, Any]]) -> None:
        """Note items read in this round."""
        for item in items:
            retailer_id = str(item.get("retailer_id") or "")
            if not retailer_id:
                continue
            self._seen.add(retailer_id)
            rejection = review_rejection(item)
            if rejection is not None:
                self.rejected[retailer_id] = rejection.to_dict()
            elif str(item.get("review_status") or "").lower() == REVIEW_PENDING:
                self._still_pending.add(retailer_id)

    def end_round(self, *, complete: bool = True, now: float | None = None) -> dict[str, Any] | None:
        """The event the wait ends with after this round, or None to read again.

        ``complete=False``: the round's read failed part way; ids it did not reach stay pending.
        """
        self.rounds += 1
        remaining = []
        for retailer_id in self.pending:
            if retailer_id in self.rejected:
                continue
            if retailer_id in self._still_pending or (not complete and retailer_id not in self._seen):
                remaining.append(retailer_id)
            elif retailer_id not in self._seen:
                self.missing += 1
        self.pending = remaining
        self._seen, self._still_pending = set(), set()
        if not self.pending:
            return self.event("success")
        if (time.time() if now is None else now) >= self.deadline:
            return self.event("success", deadline_passed=True)
        return None

    def seconds_left(self, now: float | None = None) -> float:
        return max(0.0, self.deadline - (time.time() if now is None else now))

    def failed(self, error: GraphApiError) -> dict[str, Any]:
        """The event when Meta answers a read with a permanent error: what was found so far."""
        return self.event("error", message=str(error))

    def event(
        self, status: str, *, deadline_passed: bool = False, message: str | None = None
    ) -> dict[str, Any]:
        return {
            "status": status,
            "catalog_id": self.catalog_id,
            "checked": self.checked,
            "rejected": dict(self.rejected),
            "unreviewed_count": len(self.pending),
            "unreviewed_samples": self.pending[:REVIEW_SAMPLES],
            "missing_count": self.missing,
            "deadline_passed": deadline_passed,
            "rounds": self.rounds,
            "message": message,
        }
