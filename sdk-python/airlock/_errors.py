"""Errors of the Airlock SDK: one class per kind, all with a stable ``code``."""
from __future__ import annotations

from email.utils import parsedate_to_datetime
import time
from typing import Any, Optional


class AirlockError(Exception):
    """Every error the SDK raises. Branch on the class or on ``code``, never on the text."""

    def __init__(self, message: str, code: str, status: Optional[int] = None, details: Optional[list] = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details = details or []


class AuthenticationError(AirlockError):
    """401: missing, wrong or revoked API key."""


class ForbiddenError(AirlockError):
    """403: the key is good but may not do this (an admin route, the runc comparison runtime, another tenant's audit trail)."""


class NotFoundError(AirlockError):
    """404: no such job for this tenant."""


class ValidationError(AirlockError):
    """400, 413, 415, 422: the request is wrong; ``details`` says where."""


class ConflictError(AirlockError):
    """409: e.g. cancelling a job that has already ended."""


class RateLimitError(AirlockError):
    """429: slow down; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, code: str, status: int, retry_after: Optional[float]):
        super().__init__(message, code, status)
        self.retry_after = retry_after


class UnavailableError(AirlockError):
    """503: no worker can isolate jobs now, or the store is down; the request was not taken."""

    def __init__(self, message: str, code: str, status: int, retry_after: Optional[float]):
        super().__init__(message, code, status)
        self.retry_after = retry_after


class ServerError(AirlockError):
    """Any other 5xx."""


class TimeoutError(AirlockError):  # noqa: A001 - the SDK's own, distinct from the builtin
    """A call or wait took longer than its timeout."""


class ConnectionError(AirlockError):  # noqa: A001
    """The server could not be reached, or the connection broke."""


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds or an HTTP date -> seconds from now."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def error_from_response(status: int, body: Any, retry_after: Optional[str]) -> AirlockError:
    """The one mapping from an error answer to an exception."""
    body = body if isinstance(body, dict) else {}
    code = body.get("code") or f"HTTP_{status}"
    message = body.get("message") or f"the server answered {status}"
    if status == 401:
        return AuthenticationError(message, code, status)
    if status == 403:
        return ForbiddenError(message, code, status)
    if status == 404:
        return NotFoundError(message, code, status)
    if status == 409:
        return ConflictError(message, code, status)
    if status == 429:
        return RateLimitError(message, code, status, parse_retry_after(retry_after))
    if status == 503:
        return UnavailableError(message, code, status, parse_retry_after(retry_after))
    if 400 <= status < 500:
        return ValidationError(message, code, status, body.get("details"))
    return ServerError(message, code, status)
