"""Everything one emulator remembers: catalogs, batch handles, budgets, faults and the call log.

All methods are thread-safe: the HTTP handlers run on the server's event loop while tests read
``items()`` and ``calls()`` from their own thread. No method awaits, so a plain lock is enough.
Batches settle lazily: every look first applies the batches whose processing time has passed.

Meta's read side: every item keeps the place it was first created at (a deleted and re-created item
gets its old place back), so reading ``/products`` in that order with a cursor never skips or
repeats an item while others change. An item is reviewed when its batch finishes: its review ends
``review_seconds`` later (config) or ``review_reject_after_seconds`` later when a review fault picks
it, and until then it shows ``review_status`` "pending". An item updated by a later batch is
reviewed again from that batch's finish; edits "by hand" (control calls) are not reviewed.
"""

from __future__ import annotations

import bisect
import copy
import dataclasses
import math
import random
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, cast

from facebook_catalog.emulator.config import EmulatorConfig
from facebook_catalog.emulator.validation import (
    METHOD_CREATE,
    METHOD_DELETE,
    METHOD_UPDATE,
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
# Meta's numeric product item ids are 16 digits; the emulator counts up from here.
PRODUCT_ID_BASE = 7_000_000_000_000_000


@dataclass(frozen=True)
class ReviewRejection:
    """What Meta's later review found wrong with an item: its ProductItemError and diagnostic group."""

    error_type: str
    title: str
    description: str
    # The catalog diagnostics group (``type``) the item is counted in.
    diagnostic_type: str

    def item_error(self) -> dict[str, str]:
        """One entry of the item's ``errors`` field, in Meta's ProductItemError shape."""
        return {
            "error_type": self.error_type,
            "error_priority": "HIGH",
            "title": self.title,
            "description": self.description,
        }


REVIEW_REJECTIONS: dict[str, ReviewRejection] = {
    "image": ReviewRejection(
        error_type="IMAGE_FETCH_FAILED",
        title="Image couldn't be downloaded",
        description=(
            "We couldn't download the image at image_link. Check that the URL is publicly reachable "
            "and points to a JPEG or PNG image (injected)"
        ),
        diagnostic_type="IMAGE_QUALITY",
    ),
    "policy": ReviewRejection(
        error_type="POLICY_VIOLATION",
        title="Item rejected: doesn't comply with Commerce Policies",
        description="This item doesn't comply with Meta's Commerce Policies and won't be shown (injected)",
        diagnostic_type="POLICY_VIOLATION",
    ),
}


@dataclass(frozen=True)
class ItemReview:
    """Meta's review of one item: when it ends and, if the item fails it, why."""

    due_at: float
    rejection: str | None

    def status(self, now: float) -> str:
        if now < self.due_at:
            return "pending"
        return "rejected" if self.rejection is not None else "approved"

    def errors(self, now: float) -> list[dict[str, str]]:
        if self.rejection is None or now < self.due_at:
            return []
        return [REVIEW_REJECTIONS[self.rejection].item_error()]


@dataclass(frozen=True)
class ProductRow:
    """One item as the products edge reads it: its place, Meta's id, its fields and its review."""

    position: int
    product_id: str
    item: dict[str, Any]
    review_status: str
    errors: list[dict[str, str]]


@dataclass(frozen=True)
class ProductsRead:
    """One page of the products edge, and whether items lie before or after it."""

    rows: list[ProductRow]
    has_before: bool
    has_after: bool


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
    # Items Meta accepts and stores but rejects in its later review (image fetch, policy): their
    # batch finishes cleanly; ``review_reject_after_seconds`` after it finished the item shows
    # review_status "rejected" and an ``errors`` entry on the products edge and in diagnostics.
    review_reject_item_ids: tuple[str, ...] = ()
    # The same by rule, like ``reject_items_where`` (a fixed and re-sent item passes review).
    review_reject_where: dict[str, str] = dataclasses.field(default_factory=dict)
    review_reject_after_seconds: float = 0.0
    # What the review found: "image" (image_link could not be downloaded) or "policy".
    review_reject_reason: str = "image"
    # The next N read calls (products, diagnostics) answer 80009, Catalog Management throttling.
    throttle_reads_next: int = 0
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in (
            "throttle_next",
            "server_error_next",
            "drop_next",
            "error_handles_next",
            "stuck_handles_next",
            "throttle_reads_next",
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
        ids = self.review_reject_item_ids
        if isinstance(ids, str) or not all(isinstance(i, str) for i in ids):
            raise ValueError(f"review_reject_item_ids must be a list of item ids, got {ids!r}")
        self.review_reject_item_ids = tuple(ids)
        review_rules = self.review_reject_where
        if not isinstance(review_rules, Mapping) or not all(
            isinstance(v, str) for v in review_rules.values()
        ):
            raise ValueError(f"review_reject_where must map field names to text, got {review_rules!r}")
        self.review_reject_where = {str(k): v.lower() for k, v in review_rules.items()}
        after = self.review_reject_after_seconds
        if isinstance(after, bool) or not isinstance(after, int | float) or after < 0:
            raise ValueError(f"review_reject_after_seconds must be a non-negative number, got {after!r}")
        if self.review_reject_reason not in REVIEW_REJECTIONS:
            raise ValueError(
                f"review_reject_reason must be one of {', '.join(REVIEW_REJECTIONS)}, "
                f"got {self.review_reject_reason!r}"
            )
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
        self._management_calls: dict[str, deque[float]] = {}
        # Read order of each catalog: retailer ids by the place each was first created at.
        self._order: dict[str, list[str]] = {}
        self._positions: dict[str, dict[str, int]] = {}
        self._product_ids: dict[str, list[int]] = {}
        self._next_product_id = PRODUCT_ID_BASE
        # Reviews not yet ended or ended in a rejection; an item without one is approved.
        self._reviews: dict[str, dict[str, ItemReview]] = {}

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

    def take_read_throttle(self) -> bool:
        """Whether this read call (products, diagnostics) is throttled by ``throttle_reads_next``."""
        with self._lock:
            if self._faults.throttle_reads_next:
                self._faults.throttle_reads_next -= 1
                return True
            return False

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
        config = self.config
        return self._consume(
            self._budget_calls, catalog_id, config.batch_calls_per_minute, config.budget_window_seconds
        )

    def consume_management_call(self, catalog_id: str) -> BudgetDecision:
        """The same for a Catalog Management call (status, catalog, products, diagnostics)."""
        return self._consume(
            self._management_calls,
            catalog_id,
            self.config.management_calls_per_hour,
            self.config.management_window_seconds,
        )

    def _consume(
        self, windows: dict[str, deque[float]], catalog_id: str, limit: int | None, window: float
    ) -> BudgetDecision:
        if limit is None:
            return BudgetDecision(allowed=True, usage_percent=0, retry_after_seconds=0.0)
        with self._lock:
            now = self._clock()
            calls = windows.setdefault(catalog_id, deque())
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
                    changed = projection.changed_items()
                    catalog.update(changed)
                    self._applied(catalog_id, changed, now)
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
            written: dict[str, dict[str, Any]] = {}
            for operation in batch.operations:
                item = apply_operation(catalog.get(operation.retailer_id), operation)
                if item is None:
                    catalog.pop(operation.retailer_id, None)
                    written.pop(operation.retailer_id, None)
                    self._reviews.get(batch.catalog_id, {}).pop(operation.retailer_id, None)
                else:
                    catalog[operation.retailer_id] = item
                    written[operation.retailer_id] = item
            batch.operations = []
            self._applied(batch.catalog_id, written, batch.created_at + processing)

    def _applied(self, catalog_id: str, written: Mapping[str, dict[str, Any]], finished_at: float) -> None:
        """Give new items their read place and start Meta's review of every written item."""
        positions = self._positions.setdefault(catalog_id, {})
        for retailer_id in written:
            if retailer_id not in positions:
                self._place(catalog_id, retailer_id)
        plan = self._faults
        review_seconds = self.config.review_seconds
        reviews = self._reviews.setdefault(catalog_id, {})
        if not (reviews or review_seconds or plan.review_reject_item_ids or plan.review_reject_where):
            return  # every item is approved at once: nothing to remember
        rejected_ids = frozenset(plan.review_reject_item_ids)
        rules = plan.review_reject_where
        for retailer_id, item in written.items():
            rejected = retailer_id in rejected_ids or any(
                text in str(item.get(name, "")).lower() for name, text in rules.items()
            )
            if rejected:
                reviews[retailer_id] = ItemReview(
                    finished_at + plan.review_reject_after_seconds, plan.review_reject_reason
                )
            elif review_seconds:
                reviews[retailer_id] = ItemReview(finished_at + review_seconds, None)
            else:
                reviews.pop(retailer_id, None)

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

    # Catalogs

    def items(self, catalog_id: str) -> dict[str, dict[str, Any]]:
        """A copy of the catalog as applied so far (finished batches are settled first)."""
        with self._lock:
            self._settle(self._clock())
            return copy.deepcopy(self._catalogs.get(catalog_id, {}))

    def product_count(self, catalog_id: str) -> int:
        with self._lock:
            self._settle(self._clock())
            return len(self._catalogs.get(catalog_id, {}))

    def read_products(
        self,
        catalog_id: str,
        *,
        match: Callable[[Mapping[str, Any]], bool],
        retailer_ids: Iterable[str] | None,
        after: int | None,
        before: int | None,
        limit: int,
    ) -> ProductsRead:
        """Up to ``limit`` items that ``match``, in read order, after (or before) a place.

        ``retailer_ids`` narrows the candidates first (a filter on retailer_id), so reading a few
        ids of a large catalog does not walk all of it.
        """
        with self._lock:
            now = self._clock()
            self._settle(now)
            catalog = self._catalogs.get(catalog_id, {})
            order = self._order.get(catalog_id, [])
            product_ids = self._product_ids.get(catalog_id, [])
            reviews = self._reviews.get(catalog_id, {})
            candidates: Sequence[int]
            if retailer_ids is None:
                candidates = range(len(order))
            else:
                positions = self._positions.get(catalog_id, {})
                candidates = sorted({positions[r] for r in retailer_ids if r in positions})

            def row_at(position: int) -> ProductRow | None:
                retailer_id = order[position]
                item = catalog.get(retailer_id)
                if item is None or not match(item):
                    return None
                review = reviews.get(retailer_id)
                return ProductRow(
                    position=position,
                    product_id=str(product_ids[position]),
                    item=dict(item),
                    review_status=review.status(now) if review else "approved",
                    errors=review.errors(now) if review else [],
                )

            rows: list[ProductRow] = []
            if before is not None:
                # Walk back from the cursor, then put the page in read order.
                index = bisect.bisect_left(candidates, before) - 1
                while index >= 0 and len(rows) < limit:
                    row = row_at(candidates[index])
                    index -= 1
                    if row is not None:
                        rows.append(row)
                rows.reverse()
                has_before = any(row_at(candidates[i]) is not None for i in range(index, -1, -1))
                return ProductsRead(rows, has_before=has_before, has_after=True)
            index = bisect.bisect_right(candidates, after) if after is not None else 0
            while index < len(candidates) and len(rows) < limit:
                row = row_at(candidates[index])
                index += 1
                if row is not None:
                    rows.append(row)
            has_after = False
            while index < len(candidates):
                if row_at(candidates[index]) is not None:
                    has_after = True
                    break
                index += 1
            return ProductsRead(rows, has_before=after is not None, has_after=has_after)

    def rejected_by_review(self, catalog_id: str) -> dict[str, list[str]]:
        """Retailer ids whose review ended in a rejection, by the rejection's reason."""
        with self._lock:
            now = self._clock()
            self._settle(now)
            found: dict[str, list[str]] = {}
            catalog = self._catalogs.get(catalog_id, {})
            for retailer_id, review in self._reviews.get(catalog_id, {}).items():
                if review.rejection is not None and now >= review.due_at and retailer_id in catalog:
                    found.setdefault(review.rejection, []).append(retailer_id)
            return found

    # Drift "by hand" (as someone in Commerce Manager would): no batch, no review

    def delete_item(self, catalog_id: str, retailer_id: str) -> bool:
        """Delete one item; False when the catalog has no such item."""
        with self._lock:
            self._settle(self._clock())
            self._reviews.get(catalog_id, {}).pop(retailer_id, None)
            return self._catalogs.get(catalog_id, {}).pop(retailer_id, None) is not None

    def edit_item(
        self, catalog_id: str, retailer_id: str, fields: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Change fields of one item (None clears a field); None when the catalog has no such item."""
        with self._lock:
            self._settle(self._clock())
            catalog = self._catalogs.get(catalog_id, {})
            current = catalog.get(retailer_id)
            if current is None:
                return None
            changes = {name: value for name, value in fields.items() if name != "id"}
            item = item_after_by_rule(current, METHOD_UPDATE, changes)
            assert item is not None  # an update never deletes
            catalog[retailer_id] = item
            return copy.deepcopy(item)

    def put_item(self, catalog_id: str, retailer_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace one item, e.g. one another tool added; it is approved at once."""
        with self._lock:
            now = self._clock()
            self._settle(now)
            item = item_after_by_rule(None, METHOD_CREATE, {**fields, "id": retailer_id})
            assert item is not None
            self._catalogs.setdefault(catalog_id, {})[retailer_id] = item
            self._reviews.get(catalog_id, {}).pop(retailer_id, None)
            if retailer_id not in self._positions.get(catalog_id, {}):
                self._place(catalog_id, retailer_id)
            return copy.deepcopy(item)

    def _place(self, catalog_id: str, retailer_id: str) -> None:
        """Give a new item the next read place and Meta id; it keeps both for good."""
        order = self._order.setdefault(catalog_id, [])
        self._positions.setdefault(catalog_id, {})[retailer_id] = len(order)
        order.append(retailer_id)
        self._product_ids.setdefault(catalog_id, []).append(self._next_product_id)
        self._next_product_id += 1

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
            self._management_calls.clear()
            self._order.clear()
            self._positions.clear()
            self._product_ids.clear()
            self._reviews.clear()
            self._faults = FaultPlan()
            self._random = random.Random()
