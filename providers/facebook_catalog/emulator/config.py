"""Settings of one emulator instance."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_ACCESS_TOKEN = "emulator-token"


@dataclass(frozen=True)
class EmulatorConfig:
    """How an emulator behaves: which credentials it accepts, how slow and how rate-limited it is.

    ``access_tokens`` and ``app_secret`` are excluded from ``repr`` so a config can be logged.
    """

    # An empty tuple accepts any non-empty token.
    access_tokens: tuple[str, ...] = field(default=(DEFAULT_ACCESS_TOKEN,), repr=False)
    # When set, every Graph call must carry appsecret_proof = HMAC-SHA256(app_secret, token).
    app_secret: str | None = field(default=None, repr=False)
    # Seconds from items_batch until its handle is finished (half dispatched, half started).
    processing_seconds: float = 0.0
    # items_batch calls each catalog may make per window; None means unlimited.
    batch_calls_per_minute: int | None = None
    # The budget window is 60 s / time_scale, so benchmarks can compress a minute into seconds.
    time_scale: float = 1.0
    # Reported as estimated_time_to_regain_access (minutes) in throttled answers.
    throttle_regain_minutes: int = 1
    # Catalog Management calls (batch status, catalog, products, diagnostics) each catalog may make
    # per window of 3600 s / time_scale; None means unlimited (Meta: 20,000 and more an hour).
    management_calls_per_hour: int | None = None
    # Seconds from a batch finishing until Meta's review of its items ends ("pending" until then).
    review_seconds: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.access_tokens, str):
            raise TypeError("access_tokens must be a tuple of tokens, not a single string")
        tokens = tuple(self.access_tokens)
        if any(not isinstance(token, str) or not token for token in tokens):
            raise ValueError("access_tokens must contain only non-empty strings")
        # Frozen dataclass: normalize a list argument to the declared tuple type.
        object.__setattr__(self, "access_tokens", tokens)
        if self.app_secret is not None and not self.app_secret:
            raise ValueError("app_secret must be None or a non-empty string")
        if self.processing_seconds < 0:
            raise ValueError(f"processing_seconds must be >= 0, got {self.processing_seconds}")
        if self.batch_calls_per_minute is not None and self.batch_calls_per_minute < 1:
            raise ValueError(
                f"batch_calls_per_minute must be None or >= 1, got {self.batch_calls_per_minute}"
            )
        if self.time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {self.time_scale}")
        if self.management_calls_per_hour is not None and self.management_calls_per_hour < 1:
            raise ValueError(
                f"management_calls_per_hour must be None or >= 1, got {self.management_calls_per_hour}"
            )
        if self.review_seconds < 0:
            raise ValueError(f"review_seconds must be >= 0, got {self.review_seconds}")
        if self.throttle_regain_minutes < 0:
            raise ValueError(f"throttle_regain_minutes must be >= 0, got {self.throttle_regain_minutes}")

    @property
    def budget_window_seconds(self) -> float:
        """Length of the sliding window the items_batch budget is counted over."""
        return 60.0 / self.time_scale

    @property
    def management_window_seconds(self) -> float:
        """Length of the sliding window the Catalog Management budget is counted over."""
        return 3600.0 / self.time_scale

    def public_summary(self) -> dict[str, Any]:
        """The settings without any credential, for the health endpoint."""
        return {
            "any_token_accepted": not self.access_tokens,
            "appsecret_proof_required": self.app_secret is not None,
            "processing_seconds": self.processing_seconds,
            "batch_calls_per_minute": self.batch_calls_per_minute,
            "time_scale": self.time_scale,
            "budget_window_seconds": self.budget_window_seconds,
            "throttle_regain_minutes": self.throttle_regain_minutes,
            "management_calls_per_hour": self.management_calls_per_hour,
            "review_seconds": self.review_seconds,
        }
