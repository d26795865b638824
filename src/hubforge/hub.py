"""The Hub client: one configured `HfApi` for the endpoint in HF_ENDPOINT, and Hub errors made actionable.

Errors are huggingface_hub's own types (`HfHubHTTPError` and subclasses), so nothing here depends on the HTTP
library underneath it.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable, TypeVar

from huggingface_hub import HfApi, constants
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

from .errors import AuthError, HubError, SourceError


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def make_api(token: str | None = None) -> HfApi:
    return HfApi(endpoint=hub_endpoint(), token=token or os.environ.get("HF_TOKEN"), library_name="hubforge")


def _status(exc: HfHubHTTPError) -> int | None:
    return exc.response.status_code if exc.response is not None else None


def hub_error(exc: HfHubHTTPError, doing: str) -> HubError:
    """Turn an HTTP error into a one-line error with a fix; never carries the token."""
    status = _status(exc)
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


def upstream_head(api: HfApi, repo: str, revision: str):
    """The upstream model's info at `revision`; the one place where "upstream not found" is worded. Dropped
    connections and 5xx are retried (`with_retries`)."""
    def read():
        try:
            return api.model_info(repo, revision=revision)
        except RepositoryNotFoundError as exc:
            raise SourceError(f"upstream model {repo} was not found on {api.endpoint}",
                              "check source.repo in the spec, and that the token may read it") from exc
        except RevisionNotFoundError as exc:
            raise SourceError(f"upstream model {repo} has no revision {revision!r}",
                              "check source.revision in the spec (branch, tag or commit sha)") from exc

    return with_retries(read, f"reading {repo}")


T = TypeVar("T")
RETRY_STATUSES = {408, 429, 500, 502, 503, 504}


def _transport_errors() -> tuple[type[BaseException], ...]:
    """Dropped connections and timeouts: requests' exceptions are OSErrors; httpx's (huggingface_hub >= 1) are not."""
    try:
        import httpx
    except ImportError:
        return (OSError,)
    return (OSError, httpx.TransportError)


def retry_after_seconds(value: str | None) -> float | None:
    """Retry-After in either form HTTP allows: delay-seconds or an HTTP date. None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def retry_budget_s() -> float:
    return float(os.environ.get("HUBFORGE_RETRY_SECONDS", "300"))


def with_retries(action: Callable[[], T], doing: str, budget_s: float | None = None,
                 *, sleep: Callable[[float], None] = time.sleep) -> T:
    """Run an idempotent Hub action, retrying 408/429/5xx and dropped connections with backoff and Retry-After,
    within a bounded total time; any other HTTP error becomes a one-line HubError at once."""
    deadline = time.monotonic() + (retry_budget_s() if budget_s is None else budget_s)
    delay, tries = 1.0, 0
    while True:
        tries += 1
        try:
            return action()
        except HfHubHTTPError as exc:
            status = _status(exc)
            if status not in RETRY_STATUSES:
                raise hub_error(exc, doing) from exc
            retry_after = retry_after_seconds(exc.response.headers.get("Retry-After"))
            wait, last = (delay if retry_after is None else retry_after), f"HTTP {status}"
        except _transport_errors() as exc:
            wait, last = delay, f"connection failed ({type(exc).__name__})"
        if time.monotonic() + wait > deadline:
            raise HubError(f"the Hub kept failing while {doing}: {last} after {tries} tries",
                           f"check the network and HF_ENDPOINT ({hub_endpoint()}), then re-run")
        sleep(wait)
        delay = min(delay * 2, 30.0)
