"""The Hub client: one configured `HfApi` for the endpoint in HF_ENDPOINT, and Hub errors made actionable."""

from __future__ import annotations

import os
import time
from typing import Callable, TypeVar

from huggingface_hub import HfApi, constants
from requests import ConnectionError, HTTPError, Timeout
from requests.exceptions import ChunkedEncodingError

from .errors import AuthError, HubError


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def make_api(token: str | None = None) -> HfApi:
    return HfApi(endpoint=hub_endpoint(), token=token or os.environ.get("HF_TOKEN"), library_name="hubforge")


def hub_error(exc: HTTPError, doing: str) -> HubError:
    """Turn an HTTP error into a one-line error with a fix; never carries the token."""
    status = exc.response.status_code if exc.response is not None else None
    message = getattr(exc, "server_message", None) or ""
    server = message.strip().splitlines()[0] if message.strip() else ""
    detail = f" ({server})" if server else ""
    if status == 401:
        return AuthError(f"the Hub rejected the token while {doing}{detail}",
                         "set HF_TOKEN (or --token) to a valid access token for this Hub")
    if status == 403:
        return AuthError(f"the token may not do this while {doing}{detail}",
                         "use a token with the write role for the target organisation")
    if status == 404:
        return HubError(f"not found on the Hub while {doing}{detail}", "check the repo id and revision")
    if status == 412:
        return HubError(f"the repo changed under us while {doing}{detail}",
                        "someone else pushed concurrently; re-run to publish on top of the new head")
    if status is not None and status >= 500:
        return HubError(f"the Hub failed ({status}) while {doing}{detail}", "retry later; nothing was published")
    return HubError(f"Hub request failed ({status}) while {doing}{detail}", "see the message above")


T = TypeVar("T")
RETRY_STATUSES = {429, 500, 502, 503, 504}


def retry_budget_s() -> float:
    return float(os.environ.get("HUBFORGE_RETRY_SECONDS", "300"))


def with_retries(action: Callable[[], T], doing: str, budget_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> T:
    """Run an idempotent Hub action, retrying 429/5xx and dropped connections with backoff and Retry-After,
    within a bounded total time; any other HTTP error becomes a one-line HubError at once."""
    deadline = time.monotonic() + (retry_budget_s() if budget_s is None else budget_s)
    delay, tries = 1.0, 0
    while True:
        tries += 1
        try:
            return action()
        except (ConnectionError, Timeout, ChunkedEncodingError) as exc:
            wait, last = delay, f"connection failed ({type(exc).__name__})"
        except HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in RETRY_STATUSES:
                raise hub_error(exc, doing) from exc
            retry_after = exc.response.headers.get("Retry-After")
            wait, last = (float(retry_after) if retry_after else delay), f"HTTP {status}"
        if time.monotonic() + wait > deadline:
            raise HubError(f"the Hub kept failing while {doing}: {last} after {tries} tries",
                           "re-run later; each repo is at its previous or its new commit, never between")
        sleep(wait)
        delay = min(delay * 2, 30.0)
