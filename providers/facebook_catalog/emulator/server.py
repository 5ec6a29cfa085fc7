"""Running the emulator: in a background thread (``EmulatorServer``) or as a process (the CLI)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import threading
from types import TracebackType
from typing import Any

from aiohttp import web

from facebook_catalog.emulator.app import STATE_KEY, create_app
from facebook_catalog.emulator.config import DEFAULT_ACCESS_TOKEN, EmulatorConfig
from facebook_catalog.emulator.state import EmulatorState, FaultPlan

logger = logging.getLogger("facebook_catalog.emulator")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
# Handlers still running at shutdown (say, under a latency fault) get this long to finish.
SHUTDOWN_TIMEOUT_SECONDS = 2.0
START_TIMEOUT_SECONDS = 10.0


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


async def _start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    # access_log=None: aiohttp's access log would print request lines, query string included.
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound_port = int(runner.addresses[0][1])
    return runner, bound_port


class EmulatorServer:
    """An emulator serving on its own event loop in a background thread; a context manager.

    The state is shared directly with the calling thread, so ``items()``, ``calls()``,
    ``set_faults()`` and ``reset()`` need no HTTP round trip.
    """

    def __init__(self, config: EmulatorConfig | None = None, host: str = DEFAULT_HOST, port: int = 0) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.host = host
        self._requested_port = port
        self.app = create_app(self.config)
        self.state: EmulatorState = self.app[STATE_KEY]
        self._port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not running; use start() or a with block")
        return self._port

    @property
    def url(self) -> str:
        """Base URL to use as the Graph API host, e.g. ``http://127.0.0.1:54321``."""
        return _url(self.host, self.port)

    def start(self) -> EmulatorServer:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        ready = threading.Event()
        failures: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failures), name="facebook-catalog-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(f"the emulator did not start within {START_TIMEOUT_SECONDS} s")
        if failures:
            self._thread.join()
            self._thread = None
            raise failures[0]
        logger.info("Graph API emulator serving at %s", self.url)
        return self

    def _serve(self, ready: threading.Event, failures: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            runner, self._port = loop.run_until_complete(
                _start_site(self.app, self.host, self._requested_port)
            )
        except BaseException as exc:
            failures.append(exc)
            loop.close()
            ready.set()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    def stop(self) -> None:
        """Stop serving and wait for the thread; a stopped server cannot be started again."""
        if self._thread is None:
            return
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def items(self, catalog_id: str) -> dict[str, dict[str, Any]]:
        """The catalog as applied so far (finished batches are settled first)."""
        return self.state.items(catalog_id)

    def calls(self) -> list[dict[str, Any]]:
        """The Graph call log, oldest first."""
        return self.state.calls()

    def set_faults(
        self,
        throttle_next: int = 0,
        server_error_next: int = 0,
        server_error_ratio: float = 0.0,
        latency_seconds: float = 0.0,
        drop_next: int = 0,
        error_handles_next: int = 0,
        stuck_handles_next: int = 0,
        reject_item_ids: tuple[str, ...] | list[str] = (),
        reject_items_where: dict[str, str] | None = None,
        seed: int | None = None,
        review_reject_item_ids: tuple[str, ...] | list[str] = (),
        review_reject_where: dict[str, str] | None = None,
        review_reject_after_seconds: float = 0.0,
        review_reject_reason: str = "image",
        throttle_reads_next: int = 0,
    ) -> None:
        """Replace the fault plan; options not given are cleared."""
        self.state.set_faults(
            FaultPlan(
                throttle_next=throttle_next,
                server_error_next=server_error_next,
                server_error_ratio=server_error_ratio,
                latency_seconds=latency_seconds,
                drop_next=drop_next,
                error_handles_next=error_handles_next,
                stuck_handles_next=stuck_handles_next,
                reject_item_ids=tuple(reject_item_ids),
                reject_items_where=dict(reject_items_where or {}),
                seed=seed,
                review_reject_item_ids=tuple(review_reject_item_ids),
                review_reject_where=dict(review_reject_where or {}),
                review_reject_after_seconds=review_reject_after_seconds,
                review_reject_reason=review_reject_reason,
                throttle_reads_next=throttle_reads_next,
            )
        )

    def delete_item(self, catalog_id: str, retailer_id: str) -> bool:
        """Delete an item by hand (drift); False when there is none."""
        return self.state.delete_item(catalog_id, retailer_id)

    def edit_item(self, catalog_id: str, retailer_id: str, **fields: Any) -> dict[str, Any] | None:
        """Change an item's fields by hand (drift); None when there is none."""
        return self.state.edit_item(catalog_id, retailer_id, fields)

    def put_item(self, catalog_id: str, retailer_id: str, **fields: Any) -> dict[str, Any]:
        """Create an item outside any batch (one another tool wrote)."""
        return self.state.put_item(catalog_id, retailer_id, fields)

    def reset(self) -> None:
        """Clear catalogs, handles, the call log, faults and budgets."""
        self.state.reset()


# Command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's options, for ``fb-catalog emulator`` and ``python -m facebook_catalog.emulator``."""
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        action="append",
        dest="tokens",
        metavar="TOKEN",
        help=f"access token to accept; repeat for several (default: {DEFAULT_ACCESS_TOKEN})",
    )
    parser.add_argument(
        "--app-secret",
        default=None,
        help="require appsecret_proof on every call, computed with this app secret",
    )
    parser.add_argument(
        "--processing-seconds",
        type=float,
        default=0.0,
        help="seconds from items_batch until its handle is finished (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-calls-per-minute",
        type=int,
        default=None,
        help="items_batch calls each catalog may make per window (default: unlimited)",
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="the budget window is 60 s divided by this (default: %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="logging level of the emulator (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    tokens = getattr(args, "tokens", None)
    return EmulatorConfig(
        access_tokens=tuple(tokens) if tokens else (DEFAULT_ACCESS_TOKEN,),
        app_secret=args.app_secret,
        processing_seconds=args.processing_seconds,
        batch_calls_per_minute=args.batch_calls_per_minute,
        time_scale=args.time_scale,
    )


def run_from_args(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; print one line with the URL once ready. Returns the exit status."""
    try:
        config = config_from_args(args)
    except (TypeError, ValueError) as exc:
        print(f"fb-catalog emulator: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        asyncio.run(_serve_until_signalled(config, args.host, args.port))
    except OSError as exc:
        print(f"fb-catalog emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve_until_signalled(config: EmulatorConfig, host: str, port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    runner, bound_port = await _start_site(create_app(config), host, port)
    try:
        # The config's repr leaves out the tokens and the app secret.
        logger.info("Graph API emulator settings: %r", config)
        # One line, URL last, so a parent process can read it with line.split()[-1].
        print(f"Graph API emulator serving at {_url(host, bound_port)}", flush=True)
        await stop.wait()
    finally:
        logger.info("Graph API emulator stopping")
        await runner.cleanup()
