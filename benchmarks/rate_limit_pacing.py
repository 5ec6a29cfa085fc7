"""Rate-limit pacing: items_batch calls against Meta's Catalog Batch budget, time-scaled.

The emulator enforces a budget of ``--budget`` items_batch calls per catalog per sliding window
of 60 s / ``time_scale`` (Meta: 8 calls a minute for a new or quiet catalog) and answers a call
over budget with error 80014, ``Retry-After`` (seconds until the window frees a call) and
``X-Business-Use-Case-Usage``. The operator's own sending path (``_item_requests`` →
``split_encoded`` → ``send_items_batch`` with the default retry policy) posts 50, 100 and 200
calls' worth of items (10 items a call), each run against a fresh budget.

The theoretical minimum: call *k* (from 0) cannot be accepted before ``floor(k / budget)``
windows have passed, so N calls take at least ``floor((N - 1) / budget) x window``. Refusals are
counted from the emulator's call log (answers with code 80014).

The time scale is chosen so that the largest run's minimum is about a minute.
``estimated_time_to_regain_access`` is given in whole minutes and the emulator does not scale it,
so the scaled runs set it to 0 and the hook goes by ``Retry-After``; ``--real-time`` adds one
unscaled run (minutes long) where the hook sees what Meta sends: a 1-minute estimate.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
from typing import Any

from benchmarks._common import (
    Headline,
    Report,
    argument_parser,
    catalog_connection,
    emulator_config,
    fmt,
    markdown_table,
    met,
    quiet_emulator_logs,
    record,
    timed_emulator,
)

DEFAULT_CALLS = (50, 100, 200)
QUICK_CALLS = (20, 40)
DEFAULT_BUDGET = 8
ITEMS_PER_CALL = 10
TARGET_LARGEST_SECONDS = 60.0
#: Targets from issue #7.
TARGET_OVERHEAD = 0.10
CATALOG_ID = "800000001"


def window_for(calls: int, budget: int, target_seconds: float) -> float:
    """The window length that makes ``calls`` calls take ``target_seconds`` at best."""
    windows = max(1, (calls - 1) // budget)
    return target_seconds / windows


def theoretical_minimum(calls: int, budget: int, window: float) -> float:
    return ((calls - 1) // budget) * window


def products(count: int, offset: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"PACE-{offset + i:07d}",
            "title": f"Paced product {offset + i}",
            "description": "A product sent to measure rate-limit pacing",
            "availability": "in stock",
            "condition": "new",
            "price": f"{1000 + i} IQD",
            "link": f"https://shop.example.iq/p/{offset + i}",
            "image_link": f"https://cdn.example.iq/p/{offset + i}.jpg",
            "brand": "Tigris",
        }
        for i in range(count)
    ]


def run_one(calls: int, budget: int, time_scale: float, regain_minutes: int) -> dict[str, Any]:
    from facebook_catalog.operators.items_batch import FacebookCatalogItemsBatchOperator
    from facebook_catalog.sync.posting import post_batches

    server, _ = timed_emulator(
        emulator_config(
            batch_calls_per_minute=budget, time_scale=time_scale, throttle_regain_minutes=regain_minutes
        )
    )
    window = 60.0 / time_scale
    with server:
        os.environ.update(catalog_connection(server.url, CATALOG_ID))
        operator = FacebookCatalogItemsBatchOperator(
            task_id="rate_limit_pacing",
            items=products(calls * ITEMS_PER_CALL, offset=calls * 1000),
            max_requests_per_call=ITEMS_PER_CALL,
        )
        hook = operator.hook
        started = time.perf_counter()
        posted = post_batches(
            hook, operator._item_requests(None, None, []), None, max_requests=ITEMS_PER_CALL
        )
        elapsed = time.perf_counter() - started
        hook.close()
        log = [c for c in server.calls() if c["endpoint"] == "items_batch"]
    refused = [c for c in log if c["error_code"] == 80014]
    accepted = [c for c in log if c["status"] == 200]
    minimum = theoretical_minimum(calls, budget, window)
    return {
        "calls": calls,
        "budget": budget,
        "window": window,
        "regain_minutes": regain_minutes,
        "seconds": elapsed,
        "minimum": minimum,
        "overhead": (elapsed - minimum) / minimum if minimum else 0.0,
        "refused": len(refused),
        "http_calls": len(log),
        "accepted": len(accepted),
        "items_sent": posted["items_sent"],
        "throttled_retries": posted["throttled_retries"],
        "max_in_window": _max_in_window([c["time"] for c in accepted], window),
    }


def _max_in_window(times: list[float], window: float) -> int:
    """Most accepted calls seen in any window (by the emulator's clock): the budget held."""
    ordered = sorted(times)
    best = start = 0
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window:
            start += 1
        best = max(best, end - start + 1)
    return best


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    calls_list = args.calls or (QUICK_CALLS if args.quick else DEFAULT_CALLS)
    target = args.target_seconds or (15.0 if args.quick else TARGET_LARGEST_SECONDS)
    window = window_for(max(calls_list), args.budget, target)
    time_scale = 60.0 / window
    quiet_emulator_logs()
    # One warning per refused call would bury the table; the emulator's call log counts them.
    logging.disable(logging.WARNING)
    results = []
    with tempfile.TemporaryDirectory(prefix="fb-bench-pacing-") as home:
        os.environ.setdefault("AIRFLOW_HOME", home)
        for calls in calls_list:
            result = run_one(calls, args.budget, time_scale, regain_minutes=0)
            results.append(result)
            print(f"[pacing] {_line(result)}", flush=True)
        if args.real_time:
            calls = 3 * args.budget
            result = run_one(calls, args.budget, 1.0, regain_minutes=1)
            results.append(result)
            print(f"[pacing] real time: {_line(result)}", flush=True)
    return results


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['calls']} calls, budget {r['budget']}/{r['window']:.2f} s: {r['seconds']:.1f} s "
        f"(minimum {r['minimum']:.1f} s, {r['overhead']:+.1%}), {r['refused']} refused with 80014"
    )


def report(results: list[dict[str, Any]]) -> Report:
    headers = [
        "calls",
        "budget",
        "window s",
        "regain estimate",
        "seconds",
        "minimum s",
        "over minimum",
        "refused (80014)",
        "HTTP calls",
        "max accepted per window",
        "items sent",
    ]
    rows = [
        [
            r["calls"],
            r["budget"],
            fmt(r["window"], 2),
            f"{r['regain_minutes']} min",
            fmt(r["seconds"]),
            fmt(r["minimum"]),
            f"{r['overhead']:+.1%}",
            r["refused"],
            r["http_calls"],
            r["max_in_window"],
            f"{r['items_sent']:,}",
        ]
        for r in results
    ]
    scaled = [r for r in results if r["regain_minutes"] == 0]
    worst = max(scaled, key=lambda r: r["overhead"])
    refusals = [r["refused"] for r in scaled]
    per_call = [r["refused"] / r["calls"] for r in scaled]
    grows = len(scaled) > 1 and refusals[-1] > refusals[0]
    notes = [
        "minimum = floor((calls - 1) / budget) x window: the earliest the last call can be accepted. "
        "seconds = from the first call to the last answer, through sync.posting.post_batches and the "
        "sync hook with its default retry policy.",
        f"Target: within {TARGET_OVERHEAD:.0%} of the minimum: worst {worst['overhead']:+.1%} at "
        f"{worst['calls']} calls → {met(worst['overhead'] <= TARGET_OVERHEAD)}.",
        f"Target: refusals do not grow with the number of calls: {', '.join(map(str, refusals))} refusals "
        f"for {', '.join(str(r['calls']) for r in scaled)} calls "
        f"({', '.join(f'{p:.0%}' for p in per_call)} of calls) → {met(not grows)}.",
        "The scaled runs report estimated_time_to_regain_access = 0 (it is in whole minutes and the "
        "emulator does not scale it), so the hook waits for Retry-After: the exact time until the "
        "window frees a call.",
    ]
    calls_list = " / ".join(str(r["calls"]) for r in scaled)
    headlines = [
        Headline(
            f"time over the minimum, {calls_list} calls (budget {worst['budget']} a window)",
            " / ".join(f"{r['overhead']:+.1%}" for r in scaled),
            f"within {TARGET_OVERHEAD:.0%}",
            met(worst["overhead"] <= TARGET_OVERHEAD),
        ),
        Headline(
            f"refusals (80014), {calls_list} calls",
            " / ".join(map(str, refusals)),
            "do not grow with the number of calls",
            met(not grows),
        ),
    ]
    return Report(
        name="rate_limit_pacing",
        title="Rate-limit pacing",
        headlines=headlines,
        tables=[markdown_table(headers, rows)],
        notes=notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__ or "")
    parser.add_argument(
        "--calls",
        type=int,
        action="append",
        help="items_batch calls in one run (repeat for several); default 50, 100 and 200",
    )
    parser.add_argument("--size", type=int, dest="calls", action="append", help="same as --calls")
    parser.add_argument(
        "--budget",
        type=int,
        default=DEFAULT_BUDGET,
        help="items_batch calls per window (default: %(default)s, Meta's for a quiet catalog)",
    )
    parser.add_argument(
        "--target-seconds",
        type=float,
        help=f"minimum duration of the largest run (default {TARGET_LARGEST_SECONDS:.0f} s; 15 s if --quick)",
    )
    parser.add_argument(
        "--real-time",
        action="store_true",
        help="also one unscaled run of 3 windows (about 2 minutes) with a 1-minute regain estimate",
    )
    args = parser.parse_args(argv)
    if math.isclose(args.budget, 0) or args.budget < 1:
        parser.error("--budget must be at least 1")
    record(report(run(args)), args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
