"""The one error taxonomy.

Every failure a user can cause is one of these. The error middleware turns them into a JSON
problem body ``{"error": {"code", "message", "fields"}}`` with the matching status (or an SSE
``error`` event mid-stream); anything else becomes a 500 with a request id and nothing internal.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """Base of every error that is safe to show to a client."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    default_message: ClassVar[str] = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.error_code = code or self.code
        self.fields = fields or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.error_code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class BadRequest(AppError):
    status = 400
    code = "bad_request"


class Invalid(AppError):
    """Input failed validation; ``fields`` maps each offending field to what is wrong with it."""

    status = 422
    code = "invalid"
    default_message = "Some fields are invalid."


class Unauthorized(AppError):
    status = 401
    code = "unauthorized"
    default_message = "Log in or send an API key to use this endpoint."


class Forbidden(AppError):
    status = 403
    code = "forbidden"
    default_message = "You are not allowed to do this."


class NotFound(AppError):
    """Also used for objects that exist but belong to someone else, so ids leak nothing."""

    status = 404
    code = "not_found"
    default_message = "Not found."


class Conflict(AppError):
    status = 409
    code = "conflict"
    default_message = "The request conflicts with the current state."


class PayloadTooLarge(AppError):
    status = 413
    code = "payload_too_large"
    default_message = "The request body is too large."


class UnsupportedMediaType(AppError):
    """A body of a type this endpoint does not take (form data where JSON is expected)."""

    status = 415
    code = "unsupported_media_type"


class PaymentRequired(AppError):
    status = 402
    code = "payment_required"
    default_message = "Not enough credits. Top up your wallet to continue."


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    default_message = "Too many requests. Try again later."

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kw: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after))}
        headers.update(kw.pop("headers", None) or {})
        super().__init__(message, headers=headers, **kw)
        self.retry_after = retry_after


class ServiceUnavailable(AppError):
    """A service the request needs (Redis) is unreachable for now; the client may retry."""

    status = 503
    code = "service_unavailable"
    default_message = "This is unavailable for a moment. Try again in a few seconds."

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **kw: Any) -> None:
        headers = {"Retry-After": str(max(1, retry_after))}
        headers.update(kw.pop("headers", None) or {})
        super().__init__(message, headers=headers, **kw)
        self.retry_after = retry_after


class ProviderError(AppError):
    """An LLM provider failed; the message names the provider and what to do.

    ``retryable`` errors may be retried (before the first chunk only); ``retry_after`` is the
    provider's hint in seconds."""

    status = 502
    code = "provider_error"
    default_message = "The model provider returned an error."
    retryable: ClassVar[bool] = False

    def __init__(
        self, message: str | None = None, *, retry_after: float | None = None, **kw: Any
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class NeedsKey(ProviderError):
    """No API key is configured, or the provider rejected it (401/403)."""

    status = 400
    code = "needs_key"
    default_message = (
        "This provider needs a valid API key. An admin can set it in the Plugins console."
    )


class ProviderRateLimited(ProviderError):
    status = 503
    code = "provider_rate_limited"
    default_message = "The model provider is rate limiting requests. Try again shortly."
    retryable = True


class ProviderUnavailable(ProviderError):
    """5xx answers, timeouts, refused connections, and an open circuit breaker."""

    status = 503
    code = "provider_unavailable"
    default_message = "The model provider is unavailable right now. Try again shortly."
    retryable = True


class ProviderBadResponse(ProviderError):
    """The provider answered with something that is not its documented format."""

    code = "provider_bad_response"
    default_message = "The model provider sent a malformed response."


class ContentFiltered(ProviderError):
    """The provider's (or the instance's) moderation refused the prompt or cut the answer off
    (OpenAI's ``content_filter`` finish reason, a safety block). Not retried: the same prompt
    would be refused again. Abuse detection counts these per account."""

    status = 422
    code = "content_filtered"
    default_message = "The model provider's content filter refused this request."


class PluginError(AppError):
    """A plugin misbehaved: failed to load, registered a duplicate id, or raised at runtime."""

    status = 500
    code = "plugin_error"
    default_message = "A plugin failed."

    def __init__(self, message: str | None = None, *, plugin: str | None = None, **kw: Any):
        super().__init__(message, **kw)
        self.plugin = plugin


class ConfigError(Exception):
    """Settings that cannot work (raised at startup, never shown to clients)."""
