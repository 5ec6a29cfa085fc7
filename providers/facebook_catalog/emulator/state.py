"""Everything one emulator remembers: catalogs, batch handles, budgets, faults and the call log.

All methods are thread-safe: the HTTP handlers run on the server's event loop while tests read
``items()`` and ``calls()`` from their own thread. No method awaits, so a plain lock is enough.
Batches settle lazily: every look first applies the batches whose processing time has passed.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

from facebook_catalog.emulator.config import EmulatorConfig
from facebook_catalog.emulator.localization import METHODS as LOCALIZED_METHODS
from facebook_catalog.emulator.localization import disallowed_fields, localization_problem
from facebook_catalog.emulator.validation import (
    METHOD_CREATE,
    METHOD_DELETE,
    PLAIN_VALUE_TYPES,
    ItemVerdict,
    check_record,
    plain_records,
    retailer_id_of,
)

FaultKind = Literal["drop", "server_error", "throttle"]
HandleFate = Literal["normal", "error", "stuck"]

# check_batch_request_status returns samples of errors and warnings; the totals stay exact.
STATUS_SAMPLE_SIZE = 100


@dataclass
class FaultPlan:
    """Failures the emulator injects into the next Graph calls (control calls are never faulted).

    Counters are consumed one per call, in this order: drop, server error, throttle; then
    ``server_error_ratio`` decides at random. ``latency_seconds`` delays every Graph call.
    """

    throttle_next: int = 0
    server_error_next: int = 0
    server_error_ratio: float = 0.0
    latency_seconds: float = 0.0
    drop_next: int = 0
    error_handles_next: int = 0
    stuck_handles_next: int = 0
    # Items Meta would reject for reasons the feed cannot see (policy, catalog settings): they
    # come back as batch errors and in ids_of_invalid_requests, and are not saved.
    reject_item_ids: tuple[str, ...] = ()
    # The same by rule: an item is rejected when a field's value contains the given text (case
    # ignored), e.g. {"title": "forbidden"}, so a fixed row is accepted again.
    reject_items_where: dict[str, str] = dataclasses.field(default_factory=dict)
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "throttle_next",
            "server_error_next",
            "drop_next",
            "error_handles_next",
            "stuck_handles_next",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        ratio = self.server_error_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0:
            raise ValueError(f"server_error_ratio must be a number from 0 to 1, got {ratio!r}")
        latency = self.latency_seconds
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError(f"latency_seconds must be a non-negative number, got {latency!r}")
        if isinstance(self.reject_item_ids, str) or not all(isinstance(i, str) for i in self.reject_item_ids):
            raise ValueError(f"reject_item_ids must be a list of item ids, got {self.reject_item_ids!r}")
        self.reject_item_ids = tuple(self.reject_item_ids)
        rules = self.reject_items_where
        if not isinstance(rules, Mapping) or not all(isinstance(v, str) for v in rules.values()):
            raise ValueError(f"reject_items_where must map field names to text, got {rules!r}")
        self.reject_items_where = {str(k): v.lower() for k, v in rules.items()}
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer or null, got {self.seed!r}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> FaultPlan:
        """Build a plan from JSON, rejecting names that are not fault options."""
        known = {item.name for item in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown fault option(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one Graph call: wait this long, then fail it this way (or not at all)."""

    latency_seconds: float
    kind: FaultKind | None


@dataclass(frozen=True)
class BudgetDecision:
    """Whether an items_batch call fits the catalog's budget, and the usage it leaves."""

    allowed: bool
    # Share of the window's budget used, in percent (100 when refused).
    usage_percent: int
    # Seconds until the window frees a call; 0 when allowed.
    retry_after_seconds: float


@dataclass
class CallRecord:
    """One Graph call as the call log keeps it. Never holds a credential."""

    time: float
    method: str
    endpoint: str
    catalog_id: str | None
    # None when the connection was dropped without an answer.
    status: int | None = None
    error_code: int | None = None
    handle: str | None = None
    record_count: int | None = None
    # Of the raw bytes of the ``requests`` field.
    payload_sha256: str | None = None
    payload_bytes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Operation(NamedTuple):
    """A valid record waiting to be applied when its batch finishes (a tuple: one per item)."""

    line: int
    method: str
    retailer_id: str
    fields: dict[str, Any]


@dataclass(frozen=True)
class LineMessage:
    """An error or warning of one record, by its index in the posted array and its retailer id."""

    line: int
    retailer_id: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "id": self.retailer_id, "message": self.message}


@dataclass
class BatchHandle:
    """One accepted items_batch call and what Meta will report about it."""

    handle: str
    catalog_id: str
    created_at: float
    # Kept only while the batch is pending: once applied, or when it never will be, they are
    # dropped (a finished handle reports its messages, never its items).
    operations: list[Operation]
    errors: list[LineMessage]
    warnings: list[LineMessage]
    invalid_ids: list[str]
    fate: HandleFate

    def status(self, now: float, processing_seconds: float) -> str:
        elapsed = now - self.created_at
        if self.fate == "stuck":
            return "dispatched" if elapsed < processing_seconds / 2 else "started"
        if elapsed >= processing_seconds:
            return "error" if self.fate == "error" else "finished"
        return "dispatched" if elapsed < processing_seconds / 2 else "started"


@dataclass(frozen=True)
class BatchOutcome:
    """The answer to an items_batch call: its handle (None when nothing was valid) and verdicts."""

    handle: str | None
    verdicts: list[ItemVerdict]


class _CatalogProjection:
    """The catalog as it will be once every pending batch has finished, without changing it."""

    def __init__(self, applied: Mapping[str, dict[str, Any]]) -> None:
        self._applied = applied
        # Items the operations so far have changed, in the order first changed; None: deleted.
        self.overlay: dict[str, dict[str, Any] | None] = {}
        self.has_deletes = False

    def get(self, retailer_id: str) -> dict[str, Any] | None:
        if retailer_id in self.overlay:
            return self.overlay[retailer_id]
        return self._applied.get(retailer_id)

    def apply(
        self,
        method: str,
        retailer_id: str,
        fields: dict[str, Any],
        current: dict[str, Any] | None,
        *,
        plain_values: bool = False,
    ) -> None:
        """Apply one operation to ``current``, which must be ``self.get(retailer_id)``."""
        if method == METHOD_DELETE:
            self.has_deletes = True
        self.overlay[retailer_id] = item_after(current, method, fields, plain_values=plain_values)

    def changed_items(self) -> dict[str, dict[str, Any]]:
        """The overlay when no operation was a delete: every value is an item."""
        if self.has_deletes:
            raise RuntimeError("the projection has deletes; its overlay holds None values")
        return cast("dict[str, dict[str, Any]]", self.overlay)


def localized_verdict(record: Any, catalog: Mapping[str, Any]) -> ItemVerdict:
    """One localized_items_batch request checked by Meta's rules: a known method, a valid
    localization, an item that exists, and only the fields Meta localizes for the type."""
    if not isinstance(record, dict):
        return ItemVerdict("", "", errors=["(#100) Each request must be a JSON object"])
    method = str(record.get("method") or "").upper()
    data = record.get("data")
    retailer_id = str(data.get("id")) if isinstance(data, dict) and data.get("id") is not None else ""
    errors: list[str] = []
    if method not in LOCALIZED_METHODS:
        errors.append(
            f"(#100) method must be one of {', '.join(LOCALIZED_METHODS)}, got {record.get('method')!r}"
        )
    problem = localization_problem(record.get("localization"))
    if problem is not None:
        errors.append(f"(#100) Invalid localization: {problem}")
    if not retailer_id:
        errors.append("(#100) data must be an object with the id of an existing item")
    elif retailer_id not in catalog:
        errors.append(
            f"(#10803) No item with id '{retailer_id}' in this catalog: localized_items_batch never creates "
            "items; send the item through items_batch first"
        )
    fields: dict[str, Any] = {}
    if isinstance(data, dict) and problem is None:
        kind = record["localization"]["type"]
        refused = disallowed_fields(kind, data)
        if refused:
            errors.append(
                f"(#100) Field{'s' if len(refused) > 1 else ''} {', '.join(sorted(refused))} cannot be "
                f"overridden in a {kind} override"
            )
        fields = {name: value for name, value in data.items() if name != "id"}
    return ItemVerdict(retailer_id, method, errors=errors or None, fields=fields)


def apply_operation(current: dict[str, Any] | None, operation: Operation) -> dict[str, Any] | None:
    """The item after one operation; None means it no longer exists."""
    return item_after(current, operation.method, operation.fields)


def item_after(
    current: dict[str, Any] | None, method: str, fields: dict[str, Any], *, plain_values: bool = False
) -> dict[str, Any] | None:
    """:func:`item_after_by_rule`, a copy or a merge when no value needs clearing or copying.

    ``plain_values=True`` says every value is already known to be a str, int, float or bool.
    """
    # Fast path (tested against the rule): a plain item is the whole catalog's usual case, and the
    # rule's loop over its fields cost emulator_items_batch validate 13.4-14.3 CPU µs an item
    # against 10.8-11.7 with this (3 A/B runs, 2026-12-02).
    if method != METHOD_DELETE and (plain_values or PLAIN_VALUE_TYPES.issuperset(map(type, fields.values()))):
        return dict(fields) if method == METHOD_CREATE or current is None else {**current, **fields}
    return item_after_by_rule(current, method, fields)


def item_after_by_rule(
    current: dict[str, Any] | None, method: str, fields: dict[str, Any]
) -> dict[str, Any] | None:
    """The item after an operation of ``method`` with ``fields``; None means it no longer exists.

    DELETE removes it; CREATE replaces it; UPDATE merges into what is there (an upsert starts from
    nothing). A None value clears the field; a container is copied, so no item shares one.
    """
    if method == METHOD_DELETE:
        return None
    base = {} if method == METHOD_CREATE or current is None else dict(current)
    for name, value in fields.items():
        if value is None:
            base.pop(name, None)
        else:
            base[name] = copy.deepcopy(value) if isinstance(value, dict | list) else value
    return base


class EmulatorState:
    """The in-memory world of one emulator instance; shared by its HTTP handlers and its owner."""

    def __init__(self, config: EmulatorConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.RLock()
        self._catalogs: dict[str, dict[str, dict[str, Any]]] = {}
        self._handles: dict[str, BatchHandle] = {}
        # Normal-fate handles not yet applied, in posting order (which is also finishing order).
        self._pending: list[BatchHandle] = []
        self._calls: list[CallRecord] = []
        self._budget_calls: dict[str, deque[float]] = {}
        self._faults = FaultPlan()
        self._random = random.Random()
        # catalog -> retailer id -> (type, value) -> the override's fields (localized_items_batch).
        self._overrides: dict[str, dict[str, dict[tuple[str, str], dict[str, Any]]]] = {}

    # Faults

    def set_faults(self, plan: FaultPlan) -> None:
        """Replace the fault plan (options left out are cleared)."""
        with self._lock:
            self._faults = dataclasses.replace(plan)
            self._random = random.Random(plan.seed)

    def faults(self) -> FaultPlan:
        with self._lock:
            return dataclasses.replace(self._faults)

    def take_fault(self) -> FaultDecision:
        """Decide the fault for one Graph call, consuming a counter when one applies."""
        with self._lock:
            plan = self._faults
            kind: FaultKind | None = None
            if plan.drop_next:
                plan.drop_next -= 1
                kind = "drop"
            elif plan.server_error_next:
                plan.server_error_next -= 1
                kind = "server_error"
            elif plan.throttle_next:
                plan.throttle_next -= 1
                kind = "throttle"
            elif plan.server_error_ratio and self._random.random() < plan.server_error_ratio:
                kind = "server_error"
            return FaultDecision(latency_seconds=float(plan.latency_seconds), kind=kind)

    def _take_handle_fate(self) -> HandleFate:
        plan = self._faults
        if plan.error_handles_next:
            plan.error_handles_next -= 1
            return "error"
        if plan.stuck_handles_next:
            plan.stuck_handles_next -= 1
            return "stuck"
        return "normal"

    # Budget

    def consume_batch_call(self, catalog_id: str) -> BudgetDecision:
        """Count one items_batch call against the catalog's sliding window, unless it is full."""
        limit = self.config.batch_calls_per_minute
        if limit is None:
            return BudgetDecision(allowed=True, usage_percent=0, retry_after_seconds=0.0)
        window = self.config.budget_window_seconds
        with self._lock:
            now = self._clock()
            calls = self._budget_calls.setdefault(catalog_id, deque())
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                # A refused call is not counted: only accepted calls occupy the window.
                return BudgetDecision(
                    allowed=False, usage_percent=100, retry_after_seconds=calls[0] + window - now
                )
            calls.append(now)
            return BudgetDecision(
                allowed=True,
                usage_percent=min(100, math.ceil(len(calls) * 100 / limit)),
                retry_after_seconds=0.0,
            )

    # Batches

    def submit_batch(
        self, catalog_id: str, records: Iterable[tuple[str, dict[str, Any]]], *, allow_upsert: bool
    ) -> BatchOutcome:
        """Validate an items_batch call's records and, if any is valid, create a handle for them."""
        with self._lock:
            now = self._clock()
            self._settle(now)
            projection = self._projection(catalog_id)
            rejected_ids = frozenset(self._faults.reject_item_ids)
            rules = self._faults.reject_items_where
            records = list(records)
            plain = plain_records(records)
            verdicts: list[ItemVerdict] = []
            any_valid = False
            for line, (method, data) in enumerate(records):
                retailer_id = retailer_id_of(data)
                existing = projection.get(retailer_id) if retailer_id is not None else None
                verdict = check_record(method, data, existing, allow_upsert=allow_upsert, plain=plain[line])
                if rejected_ids and verdict.retailer_id in rejected_ids:
                    verdict.errors.append("(#10800) This product was rejected by Meta's review (injected)")
                elif rules and any(
                    text in str((data or {}).get(name, "")).lower() for name, text in rules.items()
                ):
                    verdict.errors.append(
                        "(#10801) This product does not meet Meta's commerce policies (injected)"
                    )
                verdicts.append(verdict)
                if verdict.is_valid:
                    any_valid = True
                    # A valid record has an id, so ``existing`` is its current projected item.
                    projection.apply(
                        method, verdict.retailer_id, verdict.fields, existing, plain_values=plain[line]
                    )
            if not any_valid:
                return BatchOutcome(handle=None, verdicts=verdicts)

            errors: list[LineMessage] = []
            warnings: list[LineMessage] = []
            invalid_ids: list[str] = []
            for line, verdict in enumerate(verdicts):
                if not verdict.has_messages:
                    continue
                if verdict.errors:
                    errors.extend(
                        LineMessage(line, verdict.retailer_id, message) for message in verdict.errors
                    )
                    invalid_ids.append(verdict.retailer_id)
                if verdict.warnings:
                    warnings.extend(
                        LineMessage(line, verdict.retailer_id, message) for message in verdict.warnings
                    )
            batch = BatchHandle(
                handle=self._new_handle_id(),
                catalog_id=catalog_id,
                created_at=now,
                operations=[],
                errors=errors,
                warnings=warnings,
                # Each id once, in order of first appearance.
                invalid_ids=list(dict.fromkeys(invalid_ids)),
                fate=self._take_handle_fate(),
            )
            self._handles[batch.handle] = batch
            catalog = self._catalogs.setdefault(catalog_id, {})
            # An error handle applies nothing and a stuck one never finishes: no operations.
            if batch.fate == "normal":
                # Fast path of the else branch (tested against it): finished at once, with nothing
                # pending and no deletes, _settle would apply the projection's operations in its
                # overlay's order, so the overlay is the result and no operation is applied twice;
                # emulator_items_batch validate 14.4-15.7 CPU µs an item without, 10.3-11.0 with
                # (3 A/B runs, 2026-12-02).
                if not self._pending and not projection.has_deletes and self.config.processing_seconds <= 0:
                    catalog.update(projection.changed_items())
                else:
                    batch.operations = [
                        Operation(line, verdict.method, verdict.retailer_id, verdict.fields)
                        for line, verdict in enumerate(verdicts)
                        if verdict.is_valid
                    ]
                    self._pending.append(batch)
                    # Settle in case the batch is already due (as with no processing time).
                    self._settle(now)
            return BatchOutcome(handle=batch.handle, verdicts=verdicts)

    def batch_status(
        self, catalog_id: str, handle: str, *, load_ids_of_invalid_requests: bool
    ) -> dict[str, Any] | None:
        """One element of check_batch_request_status's ``data``, or None for an unknown handle."""
        with self._lock:
            now = self._clock()
            self._settle(now)
            batch = self._handles.get(handle)
            if batch is None or batch.catalog_id != catalog_id:
                return None
            return {
                "handle": batch.handle,
                "status": batch.status(now, self.config.processing_seconds),
                "errors": [error.as_dict() for error in batch.errors[:STATUS_SAMPLE_SIZE]],
                "errors_total_count": len(batch.errors),
                "warnings": [warning.as_dict() for warning in batch.warnings[:STATUS_SAMPLE_SIZE]],
                "warnings_total_count": len(batch.warnings),
                "ids_of_invalid_requests": list(batch.invalid_ids) if load_ids_of_invalid_requests else [],
            }

    def _settle(self, now: float) -> None:
        """Apply, in posting order, every pending batch whose processing time has passed."""
        processing = self.config.processing_seconds
        while self._pending and now - self._pending[0].created_at >= processing:
            batch = self._pending.pop(0)
            catalog = self._catalogs.setdefault(batch.catalog_id, {})
            for operation in batch.operations:
                item = apply_operation(catalog.get(operation.retailer_id), operation)
                if item is None:
                    catalog.pop(operation.retailer_id, None)
                else:
                    catalog[operation.retailer_id] = item
            batch.operations = []

    def _projection(self, catalog_id: str) -> _CatalogProjection:
        projection = _CatalogProjection(self._catalogs.get(catalog_id, {}))
        for batch in self._pending:
            if batch.catalog_id == catalog_id:
                for operation in batch.operations:
                    projection.apply(
                        operation.method,
                        operation.retailer_id,
                        operation.fields,
                        projection.get(operation.retailer_id),
                    )
        return projection

    def _new_handle_id(self) -> str:
        while True:
            # Opaque and unguessable, like Meta's handles; URL-safe because clients pass it in a query.
            handle = "Ac" + secrets.token_urlsafe(24)
            if handle not in self._handles:
                return handle

    # Localized overrides

    def submit_localized_batch(self, catalog_id: str, records: list[Any]) -> BatchOutcome:
        """Check a localized_items_batch call's requests (emulator/localization.py) against the
        items applied so far and, if any is valid, create a handle; valid overrides apply when
        the handle is created (unless its fate says otherwise)."""
        with self._lock:
            now = self._clock()
            self._settle(now)
            catalog = self._catalogs.get(catalog_id, {})
            verdicts = [localized_verdict(record, catalog) for record in records]
            valid = [
                (record, verdict)
                for record, verdict in zip(records, verdicts, strict=True)
                if verdict.is_valid
            ]
            if not valid:
                return BatchOutcome(handle=None, verdicts=verdicts)
            errors = [
                LineMessage(line, verdict.retailer_id, message)
                for line, verdict in enumerate(verdicts)
                for message in verdict.errors
            ]
            batch = BatchHandle(
                handle=self._new_handle_id(),
                catalog_id=catalog_id,
                created_at=now,
                operations=[],
                errors=errors,
                warnings=[],
                invalid_ids=list(dict.fromkeys(m.retailer_id for m in errors)),
                fate=self._take_handle_fate(),
            )
            self._handles[batch.handle] = batch
            if batch.fate == "normal":
                overrides = self._overrides.setdefault(catalog_id, {})
                for record, verdict in valid:
                    place = (record["localization"]["type"], record["localization"]["value"])
                    by_place = overrides.setdefault(verdict.retailer_id, {})
                    if verdict.method == METHOD_DELETE:
                        by_place.pop(place, None)
                    elif verdict.method == METHOD_CREATE:
                        by_place[place] = dict(verdict.fields)
                    else:
                        by_place[place] = {**by_place.get(place, {}), **verdict.fields}
            return BatchOutcome(handle=batch.handle, verdicts=verdicts)

    def override_details(self, catalog_id: str, retailer_id: str) -> list[dict[str, Any]]:
        """An item's overrides in the shape of Meta's ``override_details`` (Overrides API):
        ``[{"type": "language", "key": "en_XX", "values": {...}}]``."""
        with self._lock:
            by_place = self._overrides.get(catalog_id, {}).get(retailer_id, {})
            return [
                {"type": kind.lower(), "key": value, "values": dict(fields)}
                for (kind, value), fields in sorted(by_place.items())
                if fields
            ]

    # Catalogs

    def items(self, catalog_id: str) -> dict[str, dict[str, Any]]:
        """A copy of the catalog as applied so far (finished batches are settled first); an item
        with localized overrides shows them under ``override_details``."""
        with self._lock:
            self._settle(self._clock())
            items = copy.deepcopy(self._catalogs.get(catalog_id, {}))
            for retailer_id in self._overrides.get(catalog_id, {}):
                if retailer_id in items:
                    details = self.override_details(catalog_id, retailer_id)
                    if details:
                        items[retailer_id]["override_details"] = details
            return items

    def product_count(self, catalog_id: str) -> int:
        with self._lock:
            self._settle(self._clock())
            return len(self._catalogs.get(catalog_id, {}))

    # Call log

    def record_call(self, call: CallRecord) -> None:
        with self._lock:
            self._calls.append(call)

    def calls(self) -> list[dict[str, Any]]:
        with self._lock:
            self._settle(self._clock())
            return [call.as_dict() for call in self._calls]

    def reset(self) -> None:
        """Forget catalogs, handles, the call log, faults and budgets; keep the configuration."""
        with self._lock:
            self._catalogs.clear()
            self._handles.clear()
            self._pending.clear()
            self._calls.clear()
            self._budget_calls.clear()
            self._faults = FaultPlan()
            self._random = random.Random()
            self._overrides.clear()
