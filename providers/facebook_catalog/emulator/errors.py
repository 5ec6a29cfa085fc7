"""Graph API error answers in Meta's shape: ``{"error": {message, type, code, fbtrace_id, ...}}``."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import Any

# Codes the emulator answers with (GRAPH_API.md, "Errors and rate limits").
CODE_UNKNOWN = 1
CODE_SERVICE = 2
CODE_INVALID_PARAMETER = 100
CODE_INVALID_TOKEN = 190
CODE_CATALOG_MANAGEMENT_THROTTLED = 80009
CODE_CATALOG_BATCH_THROTTLED = 80014

# Meta marks these as worth retrying.
TRANSIENT_CODES = frozenset(
    {CODE_UNKNOWN, CODE_SERVICE, CODE_CATALOG_MANAGEMENT_THROTTLED, CODE_CATALOG_BATCH_THROTTLED}
)

OAUTH_EXCEPTION = "OAuthException"
GRAPH_METHOD_EXCEPTION = "GraphMethodException"


def new_fbtrace_id() -> str:
    """A random trace id like the ones Meta puts on every error (11 to 23 URL-safe characters)."""
    return "A" + secrets.token_urlsafe(16)[:22]


class GraphError(Exception):
    """A failed Graph call: raised inside the emulator, turned into Meta's JSON error answer."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        http_status: int = 400,
        error_type: str = OAUTH_EXCEPTION,
        error_subcode: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.http_status = http_status
        self.error_type = error_type
        self.error_subcode = error_subcode
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON answer, with a fresh fbtrace_id each time (as Meta does)."""
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
        }
        # Meta leaves error_subcode out when there is none; clients must not require it.
        if self.error_subcode is not None:
            error["error_subcode"] = self.error_subcode
        error["is_transient"] = self.code in TRANSIENT_CODES
        error["fbtrace_id"] = new_fbtrace_id()
        return {"error": error}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode("utf-8")


def invalid_parameter(message: str, *, error_type: str = OAUTH_EXCEPTION) -> GraphError:
    """Code 100, Meta's answer to any malformed or missing parameter."""
    return GraphError(CODE_INVALID_PARAMETER, f"(#100) {message}", error_type=error_type)


def service_unavailable() -> GraphError:
    return GraphError(
        CODE_SERVICE,
        "Service temporarily unavailable",
        http_status=500,
    )


def payload_too_large() -> GraphError:
    return GraphError(
        CODE_UNKNOWN,
        "Please reduce the amount of data you're asking for, then retry your request",
        http_status=500,
    )
