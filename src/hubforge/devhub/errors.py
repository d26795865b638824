"""Errors answered the way the Hub answers them, with headers that any input can safely end up in."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException


class HubHTTPError(Exception):
    """An error answer; `code` becomes X-Error-Code, which huggingface_hub maps to its typed errors."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


def repo_not_found(status: int = 404) -> HubHTTPError:
    return HubHTTPError(status, "Repository Not Found", "RepoNotFound")


def header_safe(text: str, limit: int = 2000) -> str:
    """Printable ASCII only: other characters would make the server drop the connection or split headers."""
    return "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in text)[:limit]


def error_response(status: int, message: str, code: str | None = None) -> JSONResponse:
    headers = {"X-Error-Message": header_safe(message)}
    if code:
        headers["X-Error-Code"] = code
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def hub_error_handler(_request: Request, exc: HubHTTPError) -> JSONResponse:
    return error_response(exc.status, exc.message, exc.code)


async def validation_error_handler(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors())
    return error_response(422, f"Invalid request: {problems}")


async def http_error_handler(_request: Request, exc: HTTPException) -> JSONResponse:
    """Unknown routes and methods answer like every other error, with X-Error-Message."""
    response = error_response(exc.status_code, str(exc.detail))
    response.headers.update(exc.headers or {})
    return response
