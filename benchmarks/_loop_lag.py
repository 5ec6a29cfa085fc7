"""A canary trigger that measures the triggerer's event-loop lag from inside the event loop.

It sleeps ``interval`` seconds again and again and notes how much later than asked it woke up:
anything that blocks the loop (a badly-written trigger, heavy CPU work) delays it. Once a second
it appends one line ``<epoch seconds> <largest lag in that second> <wake-ups>`` to ``path`` (one
small O_APPEND write: microseconds). It never fires an event.

It is not part of the provider: the triggerer imports it by class path, so the triggerer process
needs this repository on its PYTHONPATH (benchmarks/triggerer_footprint.py sets it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class LoopLagTrigger(BaseTrigger):
    def __init__(self, path: str, interval: float = 0.05) -> None:
        super().__init__()
        self.path = path
        self.interval = float(interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"path": self.path, "interval": self.interval},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        loop = asyncio.get_running_loop()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            worst, wakeups, flushed = 0.0, 0, loop.time()
            while True:
                before = loop.time()
                await asyncio.sleep(self.interval)
                after = loop.time()
                worst = max(worst, after - before - self.interval)
                wakeups += 1
                if after - flushed >= 1.0:
                    os.write(fd, f"{time.time():.3f} {worst:.6f} {wakeups}\n".encode())
                    worst, wakeups, flushed = 0.0, 0, after
        finally:
            os.close(fd)
        yield TriggerEvent({"status": "never"})  # pragma: no cover - the loop above never ends
