"""Every domain exception, in one module.

Two families. A :class:`TransientError` may succeed if retried (timeouts, 429, 5xx,
a broker or database blip): workers retry it with exponential backoff and jitter.
A :class:`PermanentError` never will (a 400, an unknown model, a malformed line):
it fails fast into the job's error file. ``api/`` maps them to HTTP status codes.
"""

from __future__ import annotations


class SwitchyardError(Exception):
    """Base of all domain errors. ``code`` is a stable machine-readable reason."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class TransientError(SwitchyardError):
    """Retry me. ``retry_after`` (seconds) is honoured when a server gave one."""

    code = "transient"

    def __init__(self, message: str, *, code: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after


class PermanentError(SwitchyardError):
    """Do not retry me."""

    code = "permanent"


# --- transient ---------------------------------------------------------------------
class ProviderRateLimited(TransientError):
    code = "rate_limited"


class ProviderUnavailable(TransientError):
    code = "provider_unavailable"


class ProviderTimeout(TransientError):
    code = "provider_timeout"


class StoreUnavailable(TransientError):
    code = "store_unavailable"


# --- permanent ---------------------------------------------------------------------
class ProviderRejected(PermanentError):
    """The provider said the request itself is wrong (4xx other than 408/409/429)."""

    code = "provider_rejected"


class ConfigError(PermanentError):
    code = "config_error"


class UnknownModel(PermanentError):
    code = "unknown_model"


class UnknownRegistryKey(ConfigError):
    code = "unknown_key"


class InputError(PermanentError):
    """A bad input line or file. ``line`` and ``field`` say where, the message says the fix."""

    code = "invalid_input"

    def __init__(self, message: str, *, line: int | None = None, field: str | None = None,
                 file: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.line = line
        self.field = field
        self.file = file

    def __str__(self) -> str:
        where = ":".join(str(p) for p in (self.file, self.line) if p is not None)
        field = f" field {self.field!r}:" if self.field else ""
        return f"{where}{':' if where else ''}{field} {self.message}".strip()


class PayloadTooLarge(InputError):
    """An upload or body over the configured size or line limits."""

    code = "payload_too_large"


class DatasetError(InputError):
    code = "invalid_dataset"


class NoAnswer(PermanentError):
    """The replay provider has no recorded answer for this prompt and model."""

    code = "no_recorded_answer"


class BudgetExhausted(PermanentError):
    code = "budget_exhausted"


class JobCancelled(PermanentError):
    code = "cancelled"


class NotFound(PermanentError):
    code = "not_found"


class DeadLettered(PermanentError):
    code = "dead_lettered"
