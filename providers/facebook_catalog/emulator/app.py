"""The aiohttp application: Meta's Catalog Batch endpoints, the catalog's read edges (``products``,
``diagnostics``) and the ``/_emulator`` control endpoints.

Every call but items_batch is a Catalog Management call: it counts against that budget
(``management_calls_per_hour``) and is throttled with 80009 when the budget is spent.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from facebook_catalog.emulator import reads
from facebook_catalog.emulator.config import EmulatorConfig
from facebook_catalog.emulator.errors import (
    CODE_CATALOG_BATCH_THROTTLED,
    CODE_CATALOG_MANAGEMENT_THROTTLED,
    CODE_INVALID_PARAMETER,
    CODE_INVALID_TOKEN,
    CODE_UNKNOWN,
    GRAPH_METHOD_EXCEPTION,
    GraphError,
    invalid_parameter,
    payload_too_large,
    service_unavailable,
)
from facebook_catalog.emulator.forms import FormError, parse_body
from facebook_catalog.emulator.localization import MAX_REQUESTS_PER_CALL as MAX_LOCALIZED_REQUESTS_PER_CALL
from facebook_catalog.emulator.state import BudgetDecision, CallRecord, EmulatorState, FaultPlan
from facebook_catalog.emulator.validation import RecordShapeError, parse_records

logger = logging.getLogger("facebook_catalog.emulator")

STATE_KEY: web.AppKey[EmulatorState] = web.AppKey("facebook_catalog_emulator_state", EmulatorState)

# Well above Meta's 28 MB so an oversized payload gets Meta's error rather than aiohttp's 413.
CLIENT_MAX_SIZE = 64 * 1024 * 1024
MAX_PAYLOAD_BYTES = 28_000_000
MAX_RECORDS_PER_CALL = 5000
ITEM_TYPE_PRODUCT = "PRODUCT_ITEM"
ERROR_PRIORITIES = ("HIGH", "MEDIUM", "LOW")

ENDPOINT_ITEMS_BATCH = "items_batch"
ENDPOINT_LOCALIZED_ITEMS_BATCH = "localized_items_batch"
ENDPOINT_BATCH_STATUS = "check_batch_request_status"
ENDPOINT_CATALOG = "catalog"
ENDPOINT_PRODUCTS = "products"
ENDPOINT_DIAGNOSTICS = "diagnostics"
READ_ENDPOINTS = (ENDPOINT_PRODUCTS, ENDPOINT_DIAGNOSTICS)
# Never put into a URL the emulator hands back (paging.next): the client sends them again itself.
CREDENTIAL_PARAMS = ("access_token", "appsecret_proof")
ENDPOINT_UNKNOWN = "unknown"

VERSION_SEGMENT = re.compile(r"v\d+\.\d+")
CATALOG_ID_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
RATE_LIMIT_DOCS = "https://developers.facebook.com/docs/graph-api/overview/rate-limiting#catalog"
CREDENTIAL_IN_QUERY = re.compile(r"((?:access_token|appsecret_proof)=)[^&\s\"]*", re.IGNORECASE)


@dataclass(frozen=True)
class GraphRoute:
    """Which Graph endpoint a path names, and for which catalog."""

    endpoint: str
    catalog_id: str | None


class _DropConnection(Exception):
    """Raised to end a Graph call by closing the connection without an answer."""


def resolve_route(path: str) -> GraphRoute:
    """Map ``[v25.0/]{catalog_id}[/edge]`` to an endpoint; the version is optional, as on Meta."""
    segments = [segment for segment in path.strip("/").split("/") if segment]
    if segments and VERSION_SEGMENT.fullmatch(segments[0]):
        segments = segments[1:]
    if not segments or not CATALOG_ID_SEGMENT.fullmatch(segments[0]):
        return GraphRoute(ENDPOINT_UNKNOWN, None)
    catalog_id = segments[0]
    if len(segments) == 1:
        return GraphRoute(ENDPOINT_CATALOG, catalog_id)
    if len(segments) == 2 and segments[1] in (
        ENDPOINT_ITEMS_BATCH,
        ENDPOINT_LOCALIZED_ITEMS_BATCH,
        ENDPOINT_BATCH_STATUS,
        *READ_ENDPOINTS,
    ):
        return GraphRoute(segments[1], catalog_id)
    return GraphRoute(ENDPOINT_UNKNOWN, catalog_id)


def create_app(config: EmulatorConfig | None = None) -> web.Application:
    """Build the emulator application; its state is ``app[STATE_KEY]``."""
    _redact_credentials_in_access_log()
    app = web.Application(client_max_size=CLIENT_MAX_SIZE)
    app[STATE_KEY] = EmulatorState(config if config is not None else EmulatorConfig())
    app.router.add_get("/_emulator/health", _control_health)
    app.router.add_get("/_emulator/catalogs/{catalog_id}/items", _control_items)
    app.router.add_delete("/_emulator/catalogs/{catalog_id}/items/{retailer_id}", _control_delete_item)
    app.router.add_patch("/_emulator/catalogs/{catalog_id}/items/{retailer_id}", _control_edit_item)
    app.router.add_put("/_emulator/catalogs/{catalog_id}/items/{retailer_id}", _control_put_item)
    app.router.add_get("/_emulator/calls", _control_calls)
    app.router.add_get("/_emulator/faults", _control_get_faults)
    app.router.add_post("/_emulator/faults", _control_set_faults)
    app.router.add_post("/_emulator/reset", _control_reset)
    app.router.add_route("*", "/_emulator/{rest:.*}", _control_not_found)
    app.router.add_route("*", "/{path:.*}", _graph_call)
    return app


# Graph calls


async def _graph_call(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    route = resolve_route(request.match_info["path"])
    call = CallRecord(
        time=time.time(), method=request.method, endpoint=route.endpoint, catalog_id=route.catalog_id
    )
    try:
        response = await _answer_graph_call(request, state, route, call)
    except GraphError as error:
        response = _error_response(error)
        call.error_code = error.code
    except _DropConnection:
        state.record_call(call)
        _log_call(call)
        if request.transport is not None:
            request.transport.close()
        # Never reaches the client: aiohttp's write fails on the closed transport and it moves on.
        return web.Response(status=500)
    except Exception:
        # The traceback is safe to log (no credentials in it); the request line is not logged.
        logger.exception("Graph API emulator failed on a %s call", route.endpoint)
        unknown = GraphError(CODE_UNKNOWN, "An unknown error has occurred.", http_status=500)
        response = _error_response(unknown)
        call.error_code = unknown.code
    call.status = response.status
    state.record_call(call)
    _log_call(call)
    return response


async def _answer_graph_call(
    request: web.Request, state: EmulatorState, route: GraphRoute, call: CallRecord
) -> web.StreamResponse:
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise payload_too_large() from None
    params = _request_params(request, body)
    raw_requests = params.get("requests")
    if route.endpoint in (ENDPOINT_ITEMS_BATCH, ENDPOINT_LOCALIZED_ITEMS_BATCH) and raw_requests is not None:
        call.payload_sha256 = hashlib.sha256(raw_requests).hexdigest()
        call.payload_bytes = len(raw_requests)

    fault = state.take_fault()
    if fault.latency_seconds:
        await asyncio.sleep(fault.latency_seconds)
    if fault.kind == "drop":
        raise _DropConnection
    if fault.kind == "server_error":
        raise service_unavailable()
    if fault.kind == "throttle":
        raise _throttled(route, retry_after_seconds=1.0, config=state.config)

    if route.endpoint == ENDPOINT_UNKNOWN:
        raise GraphError(CODE_INVALID_PARAMETER, f"Unknown path components: {request.path}")
    _authenticate(request, params, state.config)
    assert route.catalog_id is not None  # every known endpoint names a catalog
    if route.endpoint == ENDPOINT_ITEMS_BATCH:
        return _items_batch(request, state, route, params, len(body), call)
    if route.endpoint == ENDPOINT_LOCALIZED_ITEMS_BATCH:
        return _localized_items_batch(request, state, route, params, len(body), call)
    if route.endpoint in READ_ENDPOINTS and state.take_read_throttle():
        raise _throttled(route, retry_after_seconds=1.0, config=state.config)
    budget = state.consume_management_call(route.catalog_id)
    if not budget.allowed:
        raise _throttled(route, retry_after_seconds=budget.retry_after_seconds, config=state.config)
    response = _management_call(request, state, route, params, call)
    if state.config.management_calls_per_hour is not None:
        response.headers["X-Business-Use-Case-Usage"] = _business_use_case_usage(
            route.catalog_id, "catalog_management", budget.usage_percent, regain_minutes=0
        )
    return response


def _management_call(
    request: web.Request, state: EmulatorState, route: GraphRoute, params: dict[str, bytes], call: CallRecord
) -> web.Response:
    assert route.catalog_id is not None
    if route.endpoint == ENDPOINT_BATCH_STATUS:
        return _batch_status(request, state, route, params, call)
    if request.method != "GET":
        raise _unsupported_request(request.method, route.catalog_id)
    if route.endpoint == ENDPOINT_PRODUCTS:
        return _products(request, state, route.catalog_id, params, call)
    if route.endpoint == ENDPOINT_DIAGNOSTICS:
        return web.json_response({"data": reads.diagnostics_data(state.rejected_by_review(route.catalog_id))})
    return web.json_response(
        {
            "id": route.catalog_id,
            "name": f"Emulator catalog {route.catalog_id}",
            "product_count": state.product_count(route.catalog_id),
        }
    )


def _products(
    request: web.Request, state: EmulatorState, catalog_id: str, params: dict[str, bytes], call: CallRecord
) -> web.Response:
    """GET /{catalog_id}/products: one page of items in read order, with Meta's cursor paging."""
    fields = reads.parse_fields(_text_param(params, "fields"))
    product_filter = reads.parse_filter(_text_param(params, "filter"))
    limit = reads.parse_limit(_text_param(params, "limit"))
    after = reads.decode_cursor("after", _text_param(params, "after"))
    before = reads.decode_cursor("before", _text_param(params, "before"))
    priority = (_text_param(params, "error_priority") or "").upper() or None
    if priority and priority not in ERROR_PRIORITIES:
        raise invalid_parameter(
            f'Param error_priority must be one of {{{", ".join(ERROR_PRIORITIES)}}}, got "{priority}"'
        )
    page = state.read_products(
        catalog_id,
        match=product_filter.match,
        retailer_ids=product_filter.retailer_ids,
        after=after,
        before=before if after is None else None,
        limit=limit,
    )
    call.record_count = len(page.rows)
    body: dict[str, Any] = {"data": [reads.product_view(row, fields, priority) for row in page.rows]}
    if page.rows:
        first, last = reads.encode_cursor(page.rows[0].position), reads.encode_cursor(page.rows[-1].position)
        paging: dict[str, Any] = {"cursors": {"before": first, "after": last}}
        if page.has_after:
            paging["next"] = _page_url(request, params, "after", last)
        if page.has_before:
            paging["previous"] = _page_url(request, params, "before", first)
        body["paging"] = paging
    return web.json_response(body)


def _page_url(request: web.Request, params: dict[str, bytes], cursor_name: str, cursor: str) -> str:
    """The same call for the next (or previous) page: a full URL without any credential."""
    query = {
        name: value.decode("utf-8", errors="replace")
        for name, value in params.items()
        if name not in CREDENTIAL_PARAMS and name not in ("after", "before")
    }
    query[cursor_name] = cursor
    return str(request.url.with_query(query))


def _accept_batch_call(
    request: web.Request, state: EmulatorState, route: GraphRoute, params: dict[str, bytes], body_size: int
) -> tuple[str, BudgetDecision]:
    """What items_batch and localized_items_batch check first, in Meta's order: the method, the
    Catalog Batch budget, the payload's size, ``item_type``; the catalog id and the budget taken."""
    catalog_id = route.catalog_id
    assert catalog_id is not None
    if request.method != "POST":
        raise _unsupported_request(request.method, catalog_id)
    budget = state.consume_batch_call(catalog_id)
    if not budget.allowed:
        raise _throttled(route, retry_after_seconds=budget.retry_after_seconds, config=state.config)
    if body_size > MAX_PAYLOAD_BYTES:
        raise payload_too_large()
    item_type = _text_param(params, "item_type")
    if not item_type:
        raise invalid_parameter("The parameter item_type is required")
    if item_type != ITEM_TYPE_PRODUCT:
        raise invalid_parameter(
            f"Param item_type must be one of {{{ITEM_TYPE_PRODUCT}}} (the only item type this emulator "
            f'supports), got "{item_type}"'
        )
    return catalog_id, budget


def _batch_records(params: dict[str, bytes], call: CallRecord, max_requests: int) -> list[Any]:
    """The ``requests`` parameter of a batch call: a JSON array of 1 to ``max_requests``."""
    raw_requests = params.get("requests")
    if raw_requests is None or not raw_requests.strip():
        raise invalid_parameter("The parameter requests is required")
    try:
        records = json.loads(raw_requests.decode("utf-8"))
    except ValueError:  # also UnicodeDecodeError
        raise invalid_parameter("Param requests must be a JSON-encoded array of requests") from None
    if not isinstance(records, list):
        raise invalid_parameter("Param requests must be a JSON-encoded array of requests")
    call.record_count = len(records)
    if not records:
        raise invalid_parameter("Param requests must contain at least one request")
    if len(records) > max_requests:
        raise invalid_parameter(
            f"Param requests must contain at most {max_requests} requests, got {len(records)}"
        )
    return records


def _items_batch(
    request: web.Request,
    state: EmulatorState,
    route: GraphRoute,
    params: dict[str, bytes],
    body_size: int,
    call: CallRecord,
) -> web.Response:
    catalog_id, budget = _accept_batch_call(request, state, route, params, body_size)
    allow_upsert = _bool_param(params, "allow_upsert", default=True)
    records = _batch_records(params, call, MAX_RECORDS_PER_CALL)
    try:
        parsed = parse_records(records)
    except RecordShapeError as exc:
        raise invalid_parameter(str(exc)) from None

    outcome = state.submit_batch(catalog_id, parsed, allow_upsert=allow_upsert)
    call.handle = outcome.handle
    validation_status = [
        {
            "retailer_id": verdict.retailer_id,
            "errors": [{"message": message} for message in verdict.errors],
            "warnings": [{"message": message} for message in verdict.warnings],
        }
        for verdict in outcome.verdicts
        if verdict.has_messages
    ]
    headers: dict[str, str] = {}
    if state.config.batch_calls_per_minute is not None:
        headers["X-Business-Use-Case-Usage"] = _business_use_case_usage(
            catalog_id, "catalog_batch", budget.usage_percent, regain_minutes=0
        )
    return web.json_response(
        {
            "handles": [outcome.handle] if outcome.handle is not None else [],
            "validation_status": validation_status,
        },
        headers=headers,
    )


def _localized_items_batch(
    request: web.Request,
    state: EmulatorState,
    route: GraphRoute,
    params: dict[str, bytes],
    body_size: int,
    call: CallRecord,
) -> web.Response:
    """``POST /{catalog}/localized_items_batch``: overrides of existing items (Meta's rules in
    emulator/localization.py); counts against the Catalog Batch budget like items_batch, and its
    handle is checked with check_batch_request_status."""
    catalog_id, budget = _accept_batch_call(request, state, route, params, body_size)
    records = _batch_records(params, call, MAX_LOCALIZED_REQUESTS_PER_CALL)
    outcome = state.submit_localized_batch(catalog_id, records)
    call.handle = outcome.handle
    validation_status = [
        {"retailer_id": verdict.retailer_id, "errors": [{"message": message} for message in verdict.errors]}
        for verdict in outcome.verdicts
        if verdict.has_messages
    ]
    headers: dict[str, str] = {}
    if state.config.batch_calls_per_minute is not None:
        headers["X-Business-Use-Case-Usage"] = _business_use_case_usage(
            catalog_id, "catalog_batch", budget.usage_percent, regain_minutes=0
        )
    return web.json_response(
        {
            "handles": [outcome.handle] if outcome.handle is not None else [],
            "validation_status": validation_status,
        },
        headers=headers,
    )


def _batch_status(
    request: web.Request,
    state: EmulatorState,
    route: GraphRoute,
    params: dict[str, bytes],
    call: CallRecord,
) -> web.Response:
    catalog_id = route.catalog_id
    assert catalog_id is not None
    if request.method != "GET":
        raise _unsupported_request(request.method, catalog_id)
    handle = _text_param(params, "handle")
    if not handle:
        raise invalid_parameter("The parameter handle is required")
    call.handle = handle
    priority = _text_param(params, "error_priority")
    if priority and priority.upper() not in ERROR_PRIORITIES:
        raise invalid_parameter(
            f'Param error_priority must be one of {{{", ".join(ERROR_PRIORITIES)}}}, got "{priority}"'
        )
    load_ids = _bool_param(params, "load_ids_of_invalid_requests", default=False)
    status = state.batch_status(catalog_id, handle, load_ids_of_invalid_requests=load_ids)
    if status is None:
        raise invalid_parameter(
            f'Param handle "{handle}" is not a batch request handle of catalog {catalog_id}'
        )
    return web.json_response({"data": [status]})


def _request_params(request: web.Request, body: bytes) -> dict[str, bytes]:
    """Query parameters overlaid with body fields, as raw bytes."""
    params = {name: value.encode("utf-8") for name, value in request.query.items()}
    if body:
        try:
            params.update(parse_body(request.headers.get("Content-Type", ""), body))
        except FormError as exc:
            raise invalid_parameter(f"Could not read the request body: {exc}") from None
    return params


def _text_param(params: dict[str, bytes], name: str) -> str | None:
    raw = params.get(name)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise invalid_parameter(f"Param {name} must be UTF-8 text") from None


def _bool_param(params: dict[str, bytes], name: str, *, default: bool) -> bool:
    text = _text_param(params, name)
    if text is None or text == "":
        return default
    lowered = text.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise invalid_parameter(f'Param {name} must be a boolean, got "{text}"')


# Credentials


def _authenticate(request: web.Request, params: dict[str, bytes], config: EmulatorConfig) -> None:
    """Check the access token and, when an app secret is configured, the appsecret_proof."""
    token = _access_token(request, params)
    if token is None:
        raise GraphError(
            CODE_INVALID_TOKEN,
            "Error validating access token: An access token is required to request this resource.",
        )
    if config.access_tokens and not any(
        hmac.compare_digest(token.encode("utf-8"), accepted.encode("utf-8"))
        for accepted in config.access_tokens
    ):
        # The message must not echo the token.
        raise GraphError(
            CODE_INVALID_TOKEN,
            "Error validating access token: The session has expired or the access token is not valid.",
            error_subcode=463,
        )
    if config.app_secret is None:
        return
    proof = _text_param(params, "appsecret_proof")
    if not proof:
        raise GraphError(
            CODE_INVALID_PARAMETER,
            "API calls from the server require an appsecret_proof argument",
            error_type=GRAPH_METHOD_EXCEPTION,
        )
    expected = hmac.new(config.app_secret.encode("utf-8"), token.encode("utf-8"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(proof.lower().encode("utf-8"), expected.encode("utf-8")):
        raise GraphError(
            CODE_INVALID_PARAMETER,
            "Invalid appsecret_proof provided in the API argument",
            error_type=GRAPH_METHOD_EXCEPTION,
        )


def _access_token(request: web.Request, params: dict[str, bytes]) -> str | None:
    raw = params.get("access_token")
    if raw is not None:
        token = raw.decode("utf-8", errors="replace").strip()
        return token or None
    scheme, _, value = request.headers.get("Authorization", "").strip().partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


# Error answers


def _error_response(error: GraphError) -> web.Response:
    return web.json_response(error.body(), status=error.http_status, headers=error.headers)


def _unsupported_request(method: str, catalog_id: str) -> GraphError:
    return GraphError(
        CODE_INVALID_PARAMETER,
        f"Unsupported {method.lower()} request. Object with ID '{catalog_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        error_type=GRAPH_METHOD_EXCEPTION,
    )


def _throttled(route: GraphRoute, *, retry_after_seconds: float, config: EmulatorConfig) -> GraphError:
    """80014 for items_batch (Catalog Batch budget), 80009 for other catalog calls (the read edges too)."""
    if route.endpoint in (ENDPOINT_ITEMS_BATCH, ENDPOINT_LOCALIZED_ITEMS_BATCH):
        code, use_case = CODE_CATALOG_BATCH_THROTTLED, "catalog_batch"
        message = (
            "(#80014) There have been too many calls to this Catalog account. Wait a bit and try "
            f"again. For more info, please refer to {RATE_LIMIT_DOCS}."
        )
    else:
        code, use_case = CODE_CATALOG_MANAGEMENT_THROTTLED, "catalog_management"
        message = (
            "(#80009) There have been too many Catalog Management calls to this Catalog account. "
            f"Wait a bit and try again. For more info, please refer to {RATE_LIMIT_DOCS}."
        )
    usage = _business_use_case_usage(
        route.catalog_id or "0", use_case, 100, regain_minutes=config.throttle_regain_minutes
    )
    return GraphError(
        code,
        message,
        headers={
            "X-Business-Use-Case-Usage": usage,
            "Retry-After": format_retry_after(retry_after_seconds),
        },
    )


def _business_use_case_usage(
    catalog_id: str, use_case: str, call_percent: int, *, regain_minutes: int
) -> str:
    """The ``X-Business-Use-Case-Usage`` header: percentages keyed by object id."""
    return json.dumps(
        {
            catalog_id: [
                {
                    "type": use_case,
                    "call_count": call_percent,
                    # CPU and wall time shares grow with calls but stay well below the call share.
                    "total_cputime": math.ceil(call_percent / 10),
                    "total_time": math.ceil(call_percent / 5),
                    "estimated_time_to_regain_access": regain_minutes,
                }
            ]
        }
    )


def format_retry_after(seconds: float) -> str:
    """Seconds rounded up to the millisecond, so waiting that long is always enough."""
    milliseconds = max(0, math.ceil(seconds * 1000 - 1e-6))
    return f"{milliseconds / 1000:.3f}".rstrip("0").rstrip(".")


# Logging


def _log_call(call: CallRecord) -> None:
    # Built from the call record only: never the request line, whose query may carry a token.
    if call.status is None:
        logger.info("%s %s catalog=%s -> dropped connection", call.method, call.endpoint, call.catalog_id)
        return
    logger.info(
        "%s %s catalog=%s -> %s%s%s%s",
        call.method,
        call.endpoint,
        call.catalog_id,
        call.status,
        f" code={call.error_code}" if call.error_code is not None else "",
        f" records={call.record_count}" if call.record_count is not None else "",
        f" handle={call.handle}" if call.handle is not None else "",
    )


class _RedactCredentialsFilter(logging.Filter):
    """Masks access_token and appsecret_proof in aiohttp access-log lines (the request line has the query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = CREDENTIAL_IN_QUERY.sub(r"\1REDACTED", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _redact_credentials_in_access_log() -> None:
    """Protect runners we do not control (aiohttp's test server logs the request line by default)."""
    access_logger = logging.getLogger("aiohttp.access")
    if not any(isinstance(existing, _RedactCredentialsFilter) for existing in access_logger.filters):
        access_logger.addFilter(_RedactCredentialsFilter())


# Control endpoints (never faulted, never in the call log)


async def _control_health(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"status": "ok", "config": state.config.public_summary()})


async def _control_items(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    return web.json_response({"items": state.items(request.match_info["catalog_id"])})


async def _control_delete_item(request: web.Request) -> web.Response:
    """Delete an item "by hand", as someone in Commerce Manager would (drift)."""
    catalog_id, retailer_id = request.match_info["catalog_id"], request.match_info["retailer_id"]
    if not request.app[STATE_KEY].delete_item(catalog_id, retailer_id):
        return _no_such_item(catalog_id, retailer_id)
    return web.json_response({"deleted": retailer_id})


async def _control_edit_item(request: web.Request) -> web.Response:
    """Change fields of an item "by hand" (a JSON object; null clears a field)."""
    catalog_id, retailer_id = request.match_info["catalog_id"], request.match_info["retailer_id"]
    fields = await _json_object(request)
    if isinstance(fields, web.Response):
        return fields
    item = request.app[STATE_KEY].edit_item(catalog_id, retailer_id, fields)
    if item is None:
        return _no_such_item(catalog_id, retailer_id)
    return web.json_response({"item": item})


async def _control_put_item(request: web.Request) -> web.Response:
    """Create or replace an item outside any batch, as another tool writing to the catalog would."""
    catalog_id, retailer_id = request.match_info["catalog_id"], request.match_info["retailer_id"]
    fields = await _json_object(request)
    if isinstance(fields, web.Response):
        return fields
    return web.json_response({"item": request.app[STATE_KEY].put_item(catalog_id, retailer_id, fields)})


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    try:
        values = json.loads(await request.read() or b"{}")
    except ValueError:
        values = None
    if not isinstance(values, dict):
        return web.json_response({"error": "the body must be a JSON object of item fields"}, status=400)
    return values


def _no_such_item(catalog_id: str, retailer_id: str) -> web.Response:
    return web.json_response({"error": f"catalog {catalog_id} has no item {retailer_id!r}"}, status=404)


async def _control_calls(request: web.Request) -> web.Response:
    return web.json_response({"calls": request.app[STATE_KEY].calls()})


async def _control_get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": request.app[STATE_KEY].faults().as_dict()})


async def _control_set_faults(request: web.Request) -> web.Response:
    body = await request.read()
    try:
        values: Any = json.loads(body) if body.strip() else {}
        if not isinstance(values, dict):
            raise ValueError("the body must be a JSON object of fault options")
        plan = FaultPlan.from_mapping(values)
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    request.app[STATE_KEY].set_faults(plan)
    return web.json_response({"faults": plan.as_dict()})


async def _control_reset(request: web.Request) -> web.Response:
    request.app[STATE_KEY].reset()
    return web.json_response({"status": "reset"})


async def _control_not_found(request: web.Request) -> web.Response:
    return web.json_response({"error": f"unknown emulator control endpoint {request.path}"}, status=404)
