"""Emulator items_batch cost per item: how long the Graph API emulator takes to take in one item.

The emulator answers every items_batch call of the other benchmarks, in their own process, so
its time per item bounds every end-to-end figure (``feed_throughput``'s "emulator s" column).
This script measures it alone, on records built once (the landing file's products of
``_common.product_row``: 40% Arabic titles and descriptions, https links, IQD prices, plus
``condition``, ``item_group_id`` and on every third item a ``sale_price``: 10 or 11 fields, all
valid), posted as UPDATE (upsert) in calls of ``--batch`` records, a fresh emulator each round:

- **validate**: records already decoded, through ``parse_records`` and
  ``EmulatorState.submit_batch`` (Meta's item rules, the projection, the catalog);
- **http**: the whole call through a real ``EmulatorServer`` on 127.0.0.1, the body sent as
  multipart/form-data as the provider's hook sends it; timed by a middleware on the emulator's
  own thread (body read, form and JSON parsing, validation, state, answer), as
  ``feed_throughput`` times it;
- **http-urlencoded**: the same, the body url-encoded as the facebook-business SDK (the
  ``feed_throughput`` baseline) sends it, so the two clients' cost to the emulator compare.

Each stage runs ``--repeat`` rounds and reports, in microseconds per item, the median, fastest
and slowest round of the emulator's wall time, and the median of its thread's CPU time
(``time.thread_time``). On a shared machine (2 CPUs here) the CPU time is the steadier figure:
it leaves out the time the thread waited for a CPU. Prints only; nothing goes to RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks._common import (
    EMULATOR_TOKEN,
    FEED_COLUMNS,
    emulator_config,
    fmt,
    fmt_int,
    markdown_table,
    product_row,
    quiet_emulator_logs,
)

if TYPE_CHECKING:
    from aiohttp import web

STAGES = ("validate", "http", "http-urlencoded")
DEFAULT_SIZE = 100_000
QUICK_SIZE = 20_000
DEFAULT_BATCH = 5_000
DEFAULT_REPEAT = 5
CATALOG_ID = "900000001"
BOUNDARY = "emulator-items-batch-benchmark-boundary"


@dataclass
class EmulatorTime:
    """Wall and CPU seconds the emulator's thread spent answering items_batch calls."""

    wall: float = 0.0
    cpu: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, wall: float, cpu: float) -> None:
        with self._lock:
            self.wall += wall
            self.cpu += cpu

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        from aiohttp import web

        @web.middleware
        async def timed(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if not request.path.endswith("/items_batch"):
                return await handler(request)
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return await handler(request)
            finally:
                # One call at a time here, so the thread's CPU time in between is this call's.
                self.add(time.perf_counter() - wall, time.thread_time() - cpu)

        return timed


def product(i: int) -> dict[str, Any]:
    """One valid product of 10 or 11 fields, as the feed sends it."""
    item: dict[str, Any] = dict(zip(FEED_COLUMNS, product_row(i), strict=True))
    item["condition"] = "new"
    item["item_group_id"] = f"GROUP-{i // 4:07d}"
    if i % 3 == 0:
        # 250 IQD below price (prices start at 1,000 IQD), so still valid.
        price = int(item["price"].split()[0])
        item["sale_price"] = f"{price - 250} IQD"
    return item


def build_calls(size: int, batch: int) -> list[list[dict[str, Any]]]:
    """The ``requests`` arrays of every call, as decoded JSON."""
    records = [{"method": "UPDATE", "data": product(i)} for i in range(size)]
    return [records[start : start + batch] for start in range(0, size, batch)]


# An items_batch call's form fields besides ``requests``, as both clients send them.
_FORM_FIELDS = (("item_type", "PRODUCT_ITEM"), ("allow_upsert", "true"))
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
URLENCODED = "application/x-www-form-urlencoded"


def multipart_body(requests: list[dict[str, Any]]) -> bytes:
    """An items_batch body as the provider's hook sends it (multipart, raw UTF-8 JSON)."""
    requests_json = json.dumps(requests, ensure_ascii=False, separators=(",", ":"))
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (*_FORM_FIELDS, ("requests", requests_json))
    ]
    return "".join(parts).encode() + f"--{BOUNDARY}--\r\n".encode()


def urlencoded_body(requests: list[dict[str, Any]]) -> bytes:
    """An items_batch body as the facebook-business SDK sends it: url-encoded, JSON with
    ``ensure_ascii`` (so Arabic text travels as ``\\uXXXX``, percent-encoded once more)."""
    return urllib.parse.urlencode((*_FORM_FIELDS, ("requests", json.dumps(requests)))).encode("ascii")


#: Per http stage: how its bodies are built and the Content-Type they are sent with.
HTTP_BODIES: dict[str, tuple[Callable[[list[dict[str, Any]]], bytes], str]] = {
    "http": (multipart_body, MULTIPART),
    "http-urlencoded": (urlencoded_body, URLENCODED),
}


def round_validate(calls: list[list[dict[str, Any]]]) -> EmulatorTime:
    """One round of the validate stage, on a fresh emulator state."""
    from facebook_catalog.emulator import EmulatorState
    from facebook_catalog.emulator.validation import parse_records

    state = EmulatorState(emulator_config())
    wall, cpu = time.perf_counter(), time.thread_time()
    for requests in calls:
        outcome = state.submit_batch(CATALOG_ID, parse_records(requests), allow_upsert=True)
        if outcome.handle is None or any(verdict.errors for verdict in outcome.verdicts):
            raise RuntimeError("the benchmark's records should all be valid")
    return EmulatorTime(wall=time.perf_counter() - wall, cpu=time.thread_time() - cpu)


def round_http(bodies: list[bytes], content_type: str) -> EmulatorTime:
    """One round of an http stage, on a fresh emulator: the emulator's own time."""
    from facebook_catalog.emulator import EmulatorServer

    server = EmulatorServer(emulator_config())
    timing = EmulatorTime()
    server.app.middlewares.append(timing.middleware())
    headers = {
        "Content-Type": content_type,
        "Authorization": f"Bearer {EMULATOR_TOKEN}",
    }
    with server:
        url = f"{server.url}/v25.0/{CATALOG_ID}/items_batch"
        for body in bodies:
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=120) as response:
                answer = json.loads(response.read())
            if len(answer["handles"]) != 1 or answer["validation_status"]:
                raise RuntimeError(f"the benchmark's records should all be valid: {answer!r:.500}")
    return timing


def run(args: argparse.Namespace) -> str:
    size = args.size or (QUICK_SIZE if args.quick else DEFAULT_SIZE)
    calls = build_calls(size, args.batch)
    fields_per_item = statistics.mean(len(record["data"]) for call in calls for record in call)
    rows: list[list[str]] = []
    for stage in args.stages or STAGES:
        one_round: Callable[[], EmulatorTime]
        if stage == "validate":
            one_round = functools.partial(round_validate, calls)
        else:
            build_body, content_type = HTTP_BODIES[stage]
            one_round = functools.partial(round_http, [build_body(call) for call in calls], content_type)
        rounds = [one_round() for _ in range(args.repeat)]
        wall = sorted(timing.wall * 1e6 / size for timing in rounds)
        cpu = [timing.cpu * 1e6 / size for timing in rounds]
        rows.append(
            [
                stage,
                fmt_int(size),
                str(len(calls)),
                str(args.repeat),
                fmt(statistics.median(wall), 2),
                fmt(wall[0], 2),
                fmt(wall[-1], 2),
                fmt(statistics.median(cpu), 2),
            ]
        )
    headers = ["stage", "items", "calls", "rounds", "µs/item (median)", "fastest", "slowest"]
    table = markdown_table([*headers, "CPU µs/item (median)"], rows)
    return f"{table}\n\n{fields_per_item:.1f} fields per item on average, {args.batch:,} records per call."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_SIZE:,} items unless --size is given")
    parser.add_argument("--size", type=int, help=f"items per round (default: {DEFAULT_SIZE:,})")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="records per items_batch call (default: %(default)s)"
    )
    parser.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help="rounds per stage (default: %(default)s)"
    )
    parser.add_argument(
        "--stage",
        dest="stages",
        action="append",
        choices=STAGES,
        help="run this stage only (repeat for several; default: all)",
    )
    args = parser.parse_args(argv)
    if args.size is not None and args.size < 1:
        parser.error("--size must be at least 1")
    if not 1 <= args.batch <= 5000:
        parser.error("--batch must be from 1 to 5000 (Meta's limit per call)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    quiet_emulator_logs()
    print(run(args), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
