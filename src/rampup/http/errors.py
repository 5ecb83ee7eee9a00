"""The one table from the error tree to HTTP statuses, and the JSON error shape."""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rampup.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    RampupError,
    TooLarge,
    Unauthorized,
    Unavailable,
)

__all__ = ["STATUS", "install_error_handlers", "error_body", "status_of"]

STATUS: dict[type[RampupError], int] = {
    BadRequest: 400,
    InvalidInput: 422,
    NotFound: 404,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    TooLarge: 413,
    ConfigError: 500,
    Unavailable: 503,
}


def error_body(code: str, message: str, where: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if where:
        error["where"] = where
    return {"error": error}


def status_of(exc: RampupError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


async def _rampup_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RampupError)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return JSONResponse(
        error_body(exc.code, exc.message, exc.where), status_code=status_of(exc), headers=headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    where = _location(tuple(first.get("loc", ())))
    if first.get("type") == "json_invalid":
        return JSONResponse(
            error_body("bad_request", f"request body is not valid JSON: {first.get('msg')}"), status_code=400
        )
    message = f"{where}: {first.get('msg')}"
    if len(errors) > 1:
        message += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return JSONResponse(error_body("invalid", message, where), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RampupError, _rampup_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
