"""A local emulator of Meta's Catalog Batch API (items_batch, check_batch_request_status).

For integration tests, demos and benchmarks; it imports nothing else from facebook_catalog and
nothing from Airflow, so it can run as its own process (``python -m facebook_catalog.emulator``).
"""

from __future__ import annotations

from facebook_catalog.emulator.app import STATE_KEY, create_app
from facebook_catalog.emulator.config import EmulatorConfig
from facebook_catalog.emulator.server import EmulatorServer
from facebook_catalog.emulator.state import EmulatorState, FaultPlan

__all__ = [
    "STATE_KEY",
    "EmulatorConfig",
    "EmulatorServer",
    "EmulatorState",
    "FaultPlan",
    "create_app",
]
