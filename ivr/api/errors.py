"""HTTP errors as types: each carries its status, a stable error id and details for the client."""

from __future__ import annotations

from typing import Any

__all__ = ["APIError", "InvalidParameter"]


class APIError(Exception):
    status = 400
    error_id = "bad-request"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class InvalidParameter(APIError):
    status = 400
    error_id = "invalid-parameter"

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}", {"parameter": name, "reason": reason})
