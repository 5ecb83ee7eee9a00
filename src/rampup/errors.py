"""One error tree for the whole product; each boundary (HTTP, CLI) translates it once."""

__all__ = [
    "RampupError",
    "BadRequest",
    "InvalidInput",
    "NotFound",
    "Conflict",
    "Unauthorized",
    "Forbidden",
    "TooLarge",
    "ConfigError",
    "Unavailable",
]


class RampupError(Exception):
    """Root of every error Rampup raises on purpose."""

    code = "internal"

    def __init__(self, message: str, *, where: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where  # a field path or "file:line", so the user knows what to fix


class BadRequest(RampupError):
    """The body cannot be read at all: not JSON, corrupt compression, broken framing."""

    code = "bad_request"


class InvalidInput(RampupError):
    """The body reads fine but says something wrong."""

    code = "invalid"


class NotFound(RampupError):
    code = "not_found"


class Conflict(RampupError):
    code = "conflict"


class Unauthorized(RampupError):
    code = "unauthorized"


class Forbidden(RampupError):
    code = "forbidden"


class TooLarge(RampupError):
    code = "too_large"


class ConfigError(RampupError):
    code = "config"


class Unavailable(RampupError):
    code = "unavailable"
