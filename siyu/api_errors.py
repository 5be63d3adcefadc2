"""One error shape for every endpoint: {"error": {"code", "message", "field"}} (issue #7)."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_body(code: str, message: str, field: str | None) -> dict[str, object]:
    return {"error": {"code": code, "message": message, "field": field}}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, e: ApiError) -> JSONResponse:
        return JSONResponse(error_body(e.code, e.message, e.field), status_code=e.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0]
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path")]
        return JSONResponse(
            error_body("invalid", first.get("msg", "invalid input"), ".".join(loc) or None),
            status_code=422,
        )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, e: HTTPException) -> JSONResponse:
        code = {401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method"}.get(
            e.status_code, "error"
        )
        return JSONResponse(error_body(code, str(e.detail), None), status_code=e.status_code)


def _nul_path(value: object, path: str) -> str | None:
    """Where in a parsed JSON value a string holds a NUL character, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        items: Iterable[tuple[object, object]] = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{path}.{key!r}" if path else repr(key)
        found = _nul_path(item, f"{path}[{key}]" if isinstance(key, int) else
                          (f"{path}.{key}" if path else str(key)))  # fmt: skip
        if found is not None:
            return found
    return None


async def no_nul_characters(request: Request) -> None:
    """Refuse NUL (U+0000) anywhere in the input: no customer datum holds one, and PostgreSQL's
    text cannot store one (it would surface as a 500)."""
    for name, value in [*request.query_params.multi_items(), *request.path_params.items()]:
        if "\x00" in str(value):
            raise ApiError(422, "invalid", "must not contain NUL (U+0000) characters", name)
    refuse_nul(await request.body())


def refuse_nul(body: bytes) -> None:
    """A JSON body holding NUL (raw or escaped) is refused, naming where it is."""
    if b"\x00" in body or b"\\u0000" in body:  # JSON writes the escape with a lower-case u
        try:
            where = _nul_path(json.loads(body), "")
        except ValueError:
            where = None
        raise ApiError(422, "invalid", "must not contain NUL (U+0000) characters", where)
