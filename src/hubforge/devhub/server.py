"""A Hub-compatible HTTP server, real enough for the unmodified `huggingface_hub` client and `datasets`.

It speaks the subset of the Hub API that publishing and downloading use, for model and dataset repos: repo
create/delete/info, preupload, LFS batch (basic transfer, never Xet), ndjson commits (with `parentCommit` and
`create_pr`), tree, paths-info, refs, commits, tags, branches and `resolve` downloads. Tokens act for a user and
write only in that user's namespaces (see `auth`). Faults can be injected by an admin for resilience tests.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from .auth import TokenGrant, as_grants
from .deps import DevHubState
from .errors import HubHTTPError, header_safe, http_error_handler, hub_error_handler, validation_error_handler
from .routes import admin, commits, files, refs, repos
from .storage import HubStore


def _retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return header_safe(value)
    return str(int(value)) if float(value).is_integer() else str(value)


def create_app(data_dir: Path, tokens: Mapping[str, TokenGrant | tuple]) -> FastAPI:
    state = DevHubState(store=HubStore(Path(data_dir)), tokens=as_grants(tokens))
    app = FastAPI(title="hubforge devhub", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.devhub = state
    app.add_exception_handler(HubHTTPError, hub_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(HTTPException, http_error_handler)
    for module in (admin, repos, commits, refs, files):
        app.include_router(module.router)

    @app.middleware("http")
    async def faults_and_log(request: Request, call_next):
        path = request.url.path
        fault = None if path in admin.ADMIN_PATHS else state.take_fault(request.method, path)
        if fault and fault.mode == "delay":
            await asyncio.sleep(fault.delay)
        elif fault and fault.mode == "status":
            await request.body()
            headers = {"Retry-After": _retry_after(fault.retry_after)} if fault.retry_after is not None else {}
            state.request_log.append((request.method, path, fault.status))
            return JSONResponse({"error": "injected fault"}, status_code=fault.status, headers=headers)
        elif fault and fault.mode == "drop":
            await request.body()
            state.request_log.append((request.method, path, -1))

            async def truncated():
                yield b'{"error": "conn'
                raise ConnectionAbortedError("injected dropped connection")

            return StreamingResponse(truncated(), headers={"Content-Length": "1000"})
        response = await call_next(request)
        state.request_log.append((request.method, path, response.status_code))
        return response

    return app


def serve(data_dir: Path, tokens: Mapping[str, TokenGrant], host: str = "127.0.0.1", *, port: int = 8765) -> None:
    import uvicorn

    uvicorn.run(create_app(data_dir, tokens), host=host, port=port, log_level="warning")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, timeout: float = 30.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/devhub/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"devhub at {url} did not come up within {timeout:.0f}s")
            time.sleep(0.2)


class DevHubThread:
    """Runs the local Hub in a background thread of this process (tests and the demo)."""

    def __init__(self, data_dir: Path, tokens: Mapping[str, TokenGrant | tuple], port: int = 0):
        import uvicorn

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(data_dir, tokens)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def state(self) -> DevHubState:
        return self.app.state.devhub

    def __enter__(self) -> "DevHubThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"devhub did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
