"""Domain exceptions -> OpenAI error objects with the right HTTP status. Only here."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from switchyard.auth import AuthError
from switchyard.errors import (
    InputError,
    NotFound,
    PayloadTooLarge,
    PermanentError,
    ProviderRejected,
    SwitchyardError,
    TransientError,
    UnknownModel,
)

STATUS: list[tuple[type[SwitchyardError], int, str]] = [
    (AuthError, 401, "authentication_error"),
    (NotFound, 404, "not_found_error"),
    (PayloadTooLarge, 413, "invalid_request_error"),
    (UnknownModel, 404, "invalid_request_error"),
    (InputError, 400, "invalid_request_error"),
    (ProviderRejected, 502, "api_error"),
    (TransientError, 503, "api_error"),
    (PermanentError, 400, "invalid_request_error"),
]


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict[str, object]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def install(app: FastAPI) -> None:
    @app.exception_handler(SwitchyardError)
    async def domain(_: Request, exc: SwitchyardError) -> JSONResponse:
        status, type_ = next(((st, t) for cls, st, t in STATUS if isinstance(exc, cls)), (500, "api_error"))
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(str(exc), type_, getattr(exc, "code", None), getattr(exc, "field", None)),
                            status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        return JSONResponse(error_body(f"{param}: {first.get('msg', 'invalid request')}", "invalid_request_error",
                                       "invalid_request", param), status_code=400)
