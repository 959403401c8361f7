"""A bounded, retrying JSON client for the remote backend (httpx, asyncio; no Django).

``RemoteClient.post_all`` sends many requests concurrently, at most ``max_in_flight`` at
a time, and returns the answers in order. A request that meets a 429, a 5xx or a
connection / timeout error is retried with exponential backoff (``Retry-After`` is
honoured when the server sends one); any other 4xx is the caller's mistake and fails at
once with the server's message. Plain methods wrap the async ones (``asyncio.run``), since
backends are called from synchronous worker code.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from generation.backends.base import BackendError

logger = logging.getLogger(__name__)
if logging.getLogger("httpx").level == logging.NOTSET:  # one INFO line per request otherwise
    logging.getLogger("httpx").setLevel(logging.WARNING)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


class RemoteUnavailableError(BackendError):
    """The server did not answer (or kept answering 429 / 5xx) through every retry."""


class RemoteRequestError(BackendError):
    """The server refused the request (a 4xx other than 408 / 429)."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class RetryPolicy:
    """``attempts`` tries in all; waits of ``backoff * 2**k`` seconds (capped, with jitter)."""

    attempts: int = 6
    backoff: float = 0.5
    max_wait: float = 30.0
    jitter: bool = True

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        wait = min(self.backoff * 2**attempt, self.max_wait)
        return wait * random.uniform(0.5, 1.0) if self.jitter else wait


class RemoteClient:
    def __init__(
        self, *, base_url: str, api_key: str | None = None, max_in_flight: int = 16,
        timeout: float = 120.0, connect_timeout: float = 10.0, retry: RetryPolicy | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise BackendError("max_in_flight must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.max_in_flight = max_in_flight
        self.timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self.retry = retry or RetryPolicy()
        self.retries_done = 0  # over the client's life, for logs and tests

    # --- synchronous entry points ------------------------------------------------------

    def post_all(self, path: str, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        return asyncio.run(self._post_all(path, payloads))

    def get(self, path: str, *, retry: bool = True) -> dict[str, Any]:
        return asyncio.run(self._one_shot("GET", path, None, retry=retry))

    def post(self, path: str, payload: dict[str, Any], *, retry: bool = True) -> dict[str, Any]:
        return asyncio.run(self._one_shot("POST", path, payload, retry=retry))

    # --- async core --------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        limits = httpx.Limits(max_connections=self.max_in_flight)
        return httpx.AsyncClient(
            base_url=self.base_url, headers=self.headers, timeout=self.timeout, limits=limits
        )

    async def _post_all(self, path: str, payloads: Sequence[dict[str, Any]]) -> list[dict]:
        gate = asyncio.Semaphore(self.max_in_flight)

        async def one(client: httpx.AsyncClient, payload: dict[str, Any]) -> dict:
            async with gate:
                return await self._request(client, "POST", path, payload, retry=True)

        async with self._client() as client:
            tasks = [asyncio.ensure_future(one(client, p)) for p in payloads]
            try:
                return list(await asyncio.gather(*tasks))
            except BaseException:
                for task in tasks:  # one failure ends the call: stop the rest now
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise

    async def _one_shot(self, method: str, path: str, payload, *, retry: bool) -> dict:
        async with self._client() as client:
            return await self._request(client, method, path, payload, retry=retry)

    async def _request(
        self, client: httpx.AsyncClient, method: str, path: str, payload, *, retry: bool
    ) -> dict[str, Any]:
        attempts = self.retry.attempts if retry else 1
        last = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                response = await client.request(method, path, json=payload)
            except httpx.TransportError as exc:  # refused, reset, timed out
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 400:
                    return _body(response)
                last = f"HTTP {response.status_code}: {_error_text(response)}"
                if response.status_code not in RETRY_STATUSES:
                    raise RemoteRequestError(
                        f"{self.base_url}{path} refused the request: {last}",
                        status=response.status_code,
                    )
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                wait = self.retry.wait(attempt, retry_after)
                logger.warning("%s%s failed (%s); retry %d/%d in %.1f s", self.base_url, path,
                               last, attempt + 1, attempts - 1, wait)
                self.retries_done += 1
                await asyncio.sleep(wait)
        raise RemoteUnavailableError(
            f"inference server {self.base_url} did not answer {path} after {attempts} "
            f"attempt(s): {last}"
        )


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:  # e.g. vLLM's load_lora_adapter answers plain text
        return {"text": response.text}
    return data if isinstance(data, dict) else {"data": data}


def _error_text(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:500]
    error = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(error, dict):
        return str(error.get("message") or error)[:500]
    return str(error)[:500]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
