"""Sending a call: the bearer token, retries and the `Idempotency-Key`, and decoding the answer.

Retries never repeat an effect. A call is tried again only when doing so cannot act twice:
- the request never left (the connection could not be made), or the gateway refused it with
  429 and a `Retry-After` (its rate limiter answers before anything is done): any call;
- a connection lost after sending, or a 503: only a read (GET) or a write the gateway
  deduplicates by `Idempotency-Key`. Such a write gets one key per logical call, generated
  unless the caller passes one, and every retry of the call sends the same key and the same
  bytes, so the gateway replays the first answer instead of writing twice;
- a 503 `busy`: the gateway found no thread for the request and did none of it: any call.
Every wait is a little longer than asked (up to a quarter, within `max_wait`), so clients
refused at the same moment do not come back at the same moment.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import Enum
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from pgw_client.problems import problem_from

T = TypeVar("T")
Token = str | Callable[[], str]
AsyncToken = str | Callable[[], str] | Callable[[], Awaitable[str]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
BUSY = "urn:pgw:problem:busy"  # refused before any work: safe to send again


@dataclass(frozen=True)
class Retry:
    """How often and how long to try a call again (see the module's docstring for when)."""

    attempts: int = 4  # tries in all, the first included
    backoff: float = 0.25  # seconds before the second try; doubled for each further one
    max_wait: float = 30.0  # a Retry-After longer than this is not waited for: the error is raised


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    content: bytes | None
    retry_after_send: bool  # a read or a keyed write: safe to send again once it has left


def _segment(value: object) -> str:
    """A path parameter, quoted so that it stays one segment."""
    return quote(str(value.value if isinstance(value, Enum) else value), safe="")


def _text(value: object) -> str:
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def make_call(method: str, path: str, *, params: Mapping[str, object] | None = None,
              headers: Mapping[str, object] | None = None, body: object = None,
              keyed: bool = False) -> Call:
    sent_headers = {name: _text(value) for name, value in (headers or {}).items()
                    if value is not None}
    if keyed and "Idempotency-Key" not in sent_headers:
        sent_headers["Idempotency-Key"] = str(uuid.uuid4())  # one per logical call
    content = None  # serialised once: every try sends the same bytes
    if isinstance(body, BaseModel):
        content = body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    elif body is not None:
        content = TypeAdapter(type(body)).dump_json(body, by_alias=True)
    if content is not None:
        sent_headers["Content-Type"] = "application/json"
    return Call(method=method, path=path, headers=sent_headers, content=content,
                params={name: _text(value) for name, value in (params or {}).items()
                        if value is not None},
                retry_after_send=method in SAFE_METHODS or keyed)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def delay_before_retry(call: Call, retry: Retry, attempt: int, *,
                       response: httpx.Response | None = None,
                       error: httpx.TransportError | None = None) -> float | None:
    """Seconds to wait before trying `call` again after `attempt` tries, or None to stop."""
    if attempt >= retry.attempts:
        return None
    backoff = retry.backoff * 2 ** (attempt - 1)
    if error is not None:
        return backoff if isinstance(error, NOT_SENT) or call.retry_after_send else None
    assert response is not None  # noqa: S101 - one of the two is given
    wait = _retry_after(response)
    if response.status_code == 429:
        return min(_jittered(wait), retry.max_wait) if wait is not None \
            and wait <= retry.max_wait else None
    if response.status_code == 503 and (call.retry_after_send or _refused_before_work(response)):
        wait = backoff if wait is None else wait
        return min(_jittered(wait), retry.max_wait) if wait <= retry.max_wait else None
    return None


def _refused_before_work(response: httpx.Response) -> bool:
    """A 503 `busy`: the request waited for a thread and never got one, so nothing of it was
    done, and even a write without an Idempotency-Key may be sent again (as after a 429)."""
    try:
        problem = response.json()
    except ValueError:
        return False
    return isinstance(problem, dict) and problem.get("type") == BUSY


def _jittered(wait: float) -> float:
    """Up to a quarter more than asked, so that the clients one busy gateway refused at the
    same moment do not all come back at the same moment."""
    return wait * (1 + random.random() / 4)  # noqa: S311 - spreading retries, not a secret


def decode(response: httpx.Response, returns: TypeAdapter[T]) -> T:
    """The answer as its declared type, or the problem it reports raised as an exception."""
    if response.status_code >= 400 or response.status_code < 200:
        from pgw_client.errors import PROBLEM_CLASSES

        raise problem_from(response, PROBLEM_CLASSES)
    value: Any = None
    if response.content:
        media = response.headers.get("content-type", "").split(";")[0].strip()
        is_json = media == "application/json" or media.endswith("+json")
        value = response.json() if is_json else response.text
    return returns.validate_python(value)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class SyncTransport:
    def __init__(self, http: httpx.Client, token: Token, retry: Retry):
        self.http = http
        self.token = token
        self.retry = retry

    def call(self, method: str, path: str, returns: TypeAdapter[T], **parts: Any) -> T:
        call = make_call(method, path, **parts)
        attempt = 0
        while True:
            attempt += 1
            token = self.token() if callable(self.token) else self.token  # fresh per try
            try:
                response = self.http.request(call.method, call.path, params=call.params,
                                             headers={**call.headers, **_auth(token)},
                                             content=call.content)
            except httpx.TransportError as error:
                wait = delay_before_retry(call, self.retry, attempt, error=error)
                if wait is None:
                    raise
            else:
                wait = delay_before_retry(call, self.retry, attempt, response=response)
                if wait is None:
                    return decode(response, returns)
            time.sleep(wait)


class AsyncTransport:
    def __init__(self, http: httpx.AsyncClient, token: AsyncToken, retry: Retry):
        self.http = http
        self.token = token
        self.retry = retry

    async def _token(self) -> str:
        if not callable(self.token):
            return self.token
        token = self.token()
        return await token if inspect.isawaitable(token) else token

    async def call(self, method: str, path: str, returns: TypeAdapter[T], **parts: Any) -> T:
        call = make_call(method, path, **parts)
        attempt = 0
        while True:
            attempt += 1
            headers = {**call.headers, **_auth(await self._token())}
            try:
                response = await self.http.request(call.method, call.path, params=call.params,
                                                   headers=headers, content=call.content)
            except httpx.TransportError as error:
                wait = delay_before_retry(call, self.retry, attempt, error=error)
                if wait is None:
                    raise
            else:
                wait = delay_before_retry(call, self.retry, attempt, response=response)
                if wait is None:
                    return decode(response, returns)
            await asyncio.sleep(wait)


class BaseGateway:
    """The connection behind `Gateway`: a base URL, a bearer token (or a callable returning a
    fresh one for each request) and the retry policy. Pass `http` to bring your own
    `httpx.Client` (its base URL is then used); close the gateway, or use it in `with`."""

    def __init__(self, base_url: str = "", *, token: Token, retry: Retry | None = None,
                 timeout: float = 30.0, http: httpx.Client | None = None):
        self._http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self._transport = SyncTransport(self._http, token, retry or Retry())
        self._bind()

    def _bind(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()


class AsyncBaseGateway:
    """`BaseGateway` for asyncio; the token may also be an async callable."""

    def __init__(self, base_url: str = "", *, token: AsyncToken, retry: Retry | None = None,
                 timeout: float = 30.0, http: httpx.AsyncClient | None = None):
        self._http = http or httpx.AsyncClient(base_url=base_url, timeout=timeout)
        self._transport = AsyncTransport(self._http, token, retry or Retry())
        self._bind()

    def _bind(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()


__all__ = ["AsyncBaseGateway", "AsyncTransport", "BaseGateway", "Retry", "SyncTransport"]
