"""Sync and asyncio clients of the Airlock API, sharing one request policy."""
from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import uuid
from typing import Any, AsyncIterator, Callable, Dict, Iterator, List, Optional, Tuple
from urllib.parse import quote

import httpx
import websockets
import websockets.sync.client

from ._errors import (
    AirlockError,
    ConnectionError,
    RateLimitError,
    TimeoutError,
    UnavailableError,
    ValidationError,
    error_from_response,
)
from ._types import FINAL_STATUSES, Job, JobAccepted, JobBatchResult, JobEvent, JobList, JobRequest, JobSummary, Runtime

OutputCallback = Callable[[str, str], None]

_BASE_BACKOFF_S = 0.25
# The most bytes of one answer read: far above any the API sends (a job's output, an artifact).
_MAX_ANSWER_BYTES = 256 * 1024 * 1024
_MAX_BACKOFF_S = 8.0


def _backoff(attempt: int, retry_after: Optional[float]) -> float:
    if retry_after is not None:
        return min(retry_after, 60.0)
    base = min(_MAX_BACKOFF_S, _BASE_BACKOFF_S * 2**attempt)
    return base / 2 + random.random() * base / 2


def _retryable(err: AirlockError, idempotent: bool) -> bool:
    # 429 and 503 mean the request was not taken, so any call may be sent again;
    # a broken connection may have been processed, so only calls safe to repeat.
    return isinstance(err, (RateLimitError, UnavailableError)) or (idempotent and isinstance(err, (ConnectionError, TimeoutError)))


def _idempotency(key: Optional[str]) -> Dict[str, str]:
    # One key for every attempt of a call: the server makes one job of them all.
    return {"idempotency-key": key if key is not None else str(uuid.uuid4())}


def _headers(accept: Optional[str], extra: Optional[Dict[str, str]]) -> Optional[Dict[str, str]]:
    headers = dict(extra or {})
    if accept:
        headers["accept"] = accept
    return headers or None


def _segment(value: str, what: str) -> str:
    """One segment of a request's path, from a caller's value. httpx removes ``.`` and
    ``..`` segments before sending, so ``jobs.get("..")`` or an artifact path of
    ``../../<another job>/logs`` reached another route with the caller's key: such a
    segment, or an empty one, is refused before anything is sent. Every other character
    is percent-encoded, ``%`` included."""
    if value in ("", ".", ".."):
        raise ValidationError(
            f"{what} {value!r} is not a path segment: empty, '.' and '..' would name another route",
            "AIRLOCK_SDK_INVALID_PATH",
        )
    return quote(value, safe="")


def _job_path(job_id: str) -> str:
    return f"/v1/jobs/{_segment(job_id, 'job id')}"


def _artifact_path(job_id: str, path: str) -> str:
    segments = "/".join(_segment(s, "artifact path segment") for s in path.split("/"))
    return f"{_job_path(job_id)}/artifacts/{segments}"


class _Hidden:
    """A secret that a repr does not show: a client logged with an error (its vars, a
    debugger's view) does not show its key."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "[redacted]"


def _checked_base_url(base_url: str) -> str:
    """The base URL, refused when it is not an http(s) URL or carries credentials: a key in
    ``user:key@`` would be printed wherever the URL is (errors, logs), and the API takes its
    key only as a bearer token."""
    try:
        url = httpx.URL(base_url)
    except Exception:
        raise AirlockError(f"the base URL is not a URL: {base_url!r}", "AIRLOCK_SDK_CONFIG") from None
    if url.scheme not in ("http", "https"):
        raise AirlockError(f"the base URL must be http or https, got {url.scheme!r}", "AIRLOCK_SDK_CONFIG")
    if url.userinfo:
        raise AirlockError("the base URL must not carry credentials (user:key@): pass the key as api_key", "AIRLOCK_SDK_CONFIG")
    return base_url


class _Settings:
    def __init__(self, base_url: Optional[str], api_key: Optional[str], timeout: float, max_retries: int, max_answer_bytes: int = _MAX_ANSWER_BYTES):
        key = api_key if api_key is not None else os.environ.get("AIRLOCK_API_KEY")
        if not key:
            raise AirlockError("an API key is required: pass api_key or set AIRLOCK_API_KEY", "AIRLOCK_SDK_CONFIG")
        self.base_url = _checked_base_url((base_url or os.environ.get("AIRLOCK_URL") or "http://127.0.0.1:8080").rstrip("/"))
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_answer_bytes = max_answer_bytes
        self._authorization = _Hidden(f"Bearer {key}")

    @property
    def headers(self) -> Dict[str, str]:
        # httpx shows an authorization header as [secure] in its own reprs.
        return {"authorization": self._authorization.value, "accept": "application/json"}

    def __repr__(self) -> str:
        return f"<airlock settings {self.base_url}>"

    def ws_url(self, path: str, params: Dict[str, Any]) -> str:
        query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in params.items())
        return f"{'ws' + self.base_url[4:] if self.base_url.startswith('http') else self.base_url}{path}?{query}"


class _Body:
    """An answer's body, read within the request's time limit and ``max_answer_bytes``:
    httpx's timeout bounds each read, not the whole answer, so a server sending a byte
    every few seconds held a call for good, and one that never stopped filled memory."""

    def __init__(self, res: httpx.Response, settings: "_Settings", deadline: float):
        self.res, self.settings, self.deadline = res, settings, deadline
        self.chunks: List[bytes] = []
        self.size = 0

    def take(self, chunk: bytes) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError(f"the request to {self.settings.base_url} took longer than {self.settings.timeout} s", "AIRLOCK_SDK_TIMEOUT")
        self.size += len(chunk)
        if self.size > self.settings.max_answer_bytes:
            raise AirlockError(f"an answer of {self.settings.base_url} is over {self.settings.max_answer_bytes} bytes", "AIRLOCK_SDK_ANSWER_TOO_LARGE", self.res.status_code)
        self.chunks.append(chunk)

    def content(self) -> bytes:
        return b"".join(self.chunks)


def _answer(res: httpx.Response, content: bytes, binary: bool = False) -> Any:
    if binary and res.status_code < 400:
        return content
    is_json = "json" in res.headers.get("content-type", "")
    body: Any
    try:
        body = json.loads(content) if is_json and content else content.decode("utf-8", errors="replace")
    except ValueError:
        body = None
    if res.status_code >= 400:
        raise error_from_response(res.status_code, body, res.headers.get("retry-after"))
    return body


def _transport_error(err: Exception, base_url: str) -> AirlockError:
    if isinstance(err, httpx.TimeoutException):
        return TimeoutError(f"the request to {base_url} timed out", "AIRLOCK_SDK_TIMEOUT")
    return ConnectionError(f"cannot reach Airlock at {base_url}: {err}", "AIRLOCK_SDK_CONNECTION")


class _Resume:
    """Where a job's event stream is, across connections: events already seen are
    skipped, and a connection that broke counts against ``max_reconnects``."""

    def __init__(self, job_id: str, from_seq: int, max_reconnects: int):
        self.job_id = job_id
        self.last = from_seq
        self.failures = 0
        self.max_reconnects = max_reconnects

    def fresh(self, message: Any) -> Optional[JobEvent]:
        """The event of a message, or None when it was seen before."""
        event = json.loads(message)
        if event["seq"] <= self.last:
            return None
        self.last = event["seq"]
        self.failures = 0
        return event

    def broke(self) -> float:
        """Seconds to wait before reconnecting; ConnectionError past max_reconnects."""
        self.failures += 1
        if self.failures > self.max_reconnects:
            raise ConnectionError(f"the stream of job {self.job_id} keeps breaking", "AIRLOCK_SDK_CONNECTION")
        return _backoff(self.failures - 1, None)


class Jobs:
    """Jobs of this tenant (sync)."""

    def __init__(self, client: "Airlock"):
        self._c = client

    def create(self, request: JobRequest, idempotency_key: Optional[str] = None) -> JobAccepted:
        """Submits a job; it is queued. Sent with an ``Idempotency-Key`` (a new UUID unless
        you pass your own), so a submit whose answer was lost is retried as the same job."""
        return self._c._request("POST", "/v1/jobs", body=request, headers=_idempotency(idempotency_key))

    def create_batch(self, requests: List[JobRequest], idempotency_key: Optional[str] = None) -> JobBatchResult:
        """Submits several jobs in one request; each item says whether its job was queued or why not.
        Retried as ``create`` is: sent again with its key, only the jobs not made before are made."""
        return self._c._request("POST", "/v1/jobs/batch", body={"jobs": requests}, headers=_idempotency(idempotency_key))

    def get(self, job_id: str) -> Job:
        return self._c._request("GET", _job_path(job_id))

    def request(self, job_id: str) -> JobRequest:
        """The job as it was submitted (files, args, stdin, tests, limits with defaults filled in; not env)."""
        return self._c._request("GET", f"{_job_path(job_id)}/request")

    def list(self, status: Optional[List[str]] = None, limit: Optional[int] = None, cursor: Optional[str] = None) -> JobList:
        """One page of this tenant's jobs, newest first."""
        return self._c._request("GET", "/v1/jobs", params=_list_params(status, limit, cursor))

    def iterate(self, status: Optional[List[str]] = None, limit: Optional[int] = None, max: Optional[int] = None) -> Iterator[JobSummary]:  # noqa: A002
        """Every job of this tenant (or the first ``max``), newest first, page by page; ``limit`` is the page size."""
        left, page_size = _iterate_bounds(limit, max)
        cursor = None
        while left > 0:
            page = self.list(status, page_size, cursor)
            yield from page["items"][:left]
            left -= len(page["items"])
            cursor = page["nextCursor"]
            if not cursor:
                return

    def cancel(self, job_id: str) -> Job:
        """Asks for the job to be cancelled; ConflictError if it has ended."""
        return self._c._request("DELETE", _job_path(job_id))

    def logs(self, job_id: str) -> str:
        """The job's whole output so far."""
        return self._c._request("GET", f"{_job_path(job_id)}/logs", accept="text/plain")

    def artifact(self, job_id: str, path: str) -> bytes:
        """A file the job left in /workspace/out (one of ``job["artifacts"]``), byte for byte."""
        return self._c._request("GET", _artifact_path(job_id, path), accept="*/*", binary=True)

    def wait(self, job_id: str, timeout: Optional[float] = None, poll_interval: float = 0.2) -> Job:
        """Blocks until the job has ended; TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job["status"] in FINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"job {job_id} had not ended after {timeout} s", "AIRLOCK_SDK_TIMEOUT")
            time.sleep(poll_interval)
            poll_interval = min(2.0, poll_interval * 1.5)

    def stream(self, job_id: str, from_seq: int = 0, max_reconnects: int = 8) -> Iterator[JobEvent]:
        """The job's events (log, status, then end). A dropped connection is reopened
        from the last event received: no event is lost or repeated."""
        at = _Resume(job_id, from_seq, max_reconnects)
        while True:
            token = self._c._request("POST", f"{_job_path(job_id)}/stream-tokens")["token"]
            url = self._c._s.ws_url(f"{_job_path(job_id)}/stream", {"from": at.last, "token": token})
            try:
                with websockets.sync.client.connect(url, open_timeout=self._c._s.timeout) as ws:
                    for message in ws:
                        event = at.fresh(message)
                        if event is None:
                            continue
                        yield event
                        if event["type"] == "end":
                            return
            except (OSError, websockets.exceptions.WebSocketException):
                pass
            time.sleep(at.broke())

    def run(self, request: JobRequest, on_output: Optional[OutputCallback] = None) -> Job:
        """Submits a job, passes its output to ``on_output(stream, data)`` as it comes,
        and returns the ended job."""
        job_id = self.create(request)["id"]
        try:
            for event in self.stream(job_id):
                if event["type"] == "log" and on_output:
                    on_output(event["stream"], event["data"])
                elif event["type"] == "end":
                    return event["job"]
        except ConnectionError:
            pass  # the result is still there to fetch
        return self.wait(job_id)


class Airlock:
    """Sync client. ``Airlock()`` reads AIRLOCK_URL and AIRLOCK_API_KEY.

    :param timeout: time limit of one HTTP request, seconds: its whole answer is read within
        it, give or take one read
    :param max_answer_bytes: the most bytes of one answer read (far above any the API sends);
        past it the call fails with ``AIRLOCK_SDK_ANSWER_TOO_LARGE``
    :param max_retries: retries of calls refused with 429/503 (and, for calls safe to
        repeat, of network errors), with backoff or Retry-After
    """

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *, timeout: float = 30.0, max_retries: int = 3, max_answer_bytes: int = _MAX_ANSWER_BYTES):
        self._s = _Settings(base_url, api_key, timeout, max_retries, max_answer_bytes)
        self._http = httpx.Client(base_url=self._s.base_url, headers=self._s.headers, timeout=timeout)
        self.jobs = Jobs(self)

    def __enter__(self) -> "Airlock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def run(self, request: JobRequest, on_output: Optional[OutputCallback] = None) -> Job:
        return self.jobs.run(request, on_output)

    def runtimes(self) -> List[Runtime]:
        return self._request("GET", "/v1/runtimes")["runtimes"]

    def _request(self, method: str, path: str, *, body: Any = None, params: Optional[Dict[str, Any]] = None, idempotent: bool = True, accept: Optional[str] = None, binary: bool = False, headers: Optional[Dict[str, str]] = None) -> Any:
        attempt = 0
        while True:
            try:
                deadline = time.monotonic() + self._s.timeout
                try:
                    with self._http.stream(method, path, json=body, params=params, headers=_headers(accept, headers)) as res:
                        got = _Body(res, self._s, deadline)
                        for chunk in res.iter_bytes():
                            got.take(chunk)
                except httpx.HTTPError as err:
                    raise _transport_error(err, self._s.base_url) from err
                return _answer(res, got.content(), binary)
            except AirlockError as err:
                if not _retryable(err, idempotent) or attempt >= self._s.max_retries:
                    raise
                time.sleep(_backoff(attempt, getattr(err, "retry_after", None)))
                attempt += 1


def _list_params(status: Optional[List[str]], limit: Optional[int], cursor: Optional[str]) -> Dict[str, Any]:
    params: Dict[str, Any] = {}
    if status:
        params["status"] = ",".join(status)
    if limit is not None:
        params["limit"] = limit
    if cursor:
        params["cursor"] = cursor
    return params


def _iterate_bounds(limit: Optional[int], max_jobs: Optional[int]) -> Tuple[int, Optional[int]]:
    """How many jobs an iteration yields in all, and its page size (``max`` sets it when ``limit`` does not)."""
    left = sys.maxsize if max_jobs is None else max_jobs
    return left, limit if limit is not None or max_jobs is None else min(max_jobs, 100)


class AsyncJobs:
    """Jobs of this tenant (asyncio)."""

    def __init__(self, client: "AsyncAirlock"):
        self._c = client

    async def create(self, request: JobRequest, idempotency_key: Optional[str] = None) -> JobAccepted:
        return await self._c._request("POST", "/v1/jobs", body=request, headers=_idempotency(idempotency_key))

    async def create_batch(self, requests: List[JobRequest], idempotency_key: Optional[str] = None) -> JobBatchResult:
        return await self._c._request("POST", "/v1/jobs/batch", body={"jobs": requests}, headers=_idempotency(idempotency_key))

    async def get(self, job_id: str) -> Job:
        return await self._c._request("GET", _job_path(job_id))

    async def request(self, job_id: str) -> JobRequest:
        return await self._c._request("GET", f"{_job_path(job_id)}/request")

    async def list(self, status: Optional[List[str]] = None, limit: Optional[int] = None, cursor: Optional[str] = None) -> JobList:
        return await self._c._request("GET", "/v1/jobs", params=_list_params(status, limit, cursor))

    async def iterate(self, status: Optional[List[str]] = None, limit: Optional[int] = None, max: Optional[int] = None) -> AsyncIterator[JobSummary]:  # noqa: A002
        """Every job of this tenant (or the first ``max``), newest first, page by page; ``limit`` is the page size."""
        left, page_size = _iterate_bounds(limit, max)
        cursor = None
        while left > 0:
            page = await self.list(status, page_size, cursor)
            for job in page["items"][:left]:
                yield job
            left -= len(page["items"])
            cursor = page["nextCursor"]
            if not cursor:
                return

    async def cancel(self, job_id: str) -> Job:
        return await self._c._request("DELETE", _job_path(job_id))

    async def logs(self, job_id: str) -> str:
        return await self._c._request("GET", f"{_job_path(job_id)}/logs", accept="text/plain")

    async def artifact(self, job_id: str, path: str) -> bytes:
        return await self._c._request("GET", _artifact_path(job_id, path), accept="*/*", binary=True)

    async def wait(self, job_id: str, timeout: Optional[float] = None, poll_interval: float = 0.2) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            if job["status"] in FINAL_STATUSES:
                return job
            if deadline is not None and time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"job {job_id} had not ended after {timeout} s", "AIRLOCK_SDK_TIMEOUT")
            await asyncio.sleep(poll_interval)
            poll_interval = min(2.0, poll_interval * 1.5)

    async def stream(self, job_id: str, from_seq: int = 0, max_reconnects: int = 8) -> AsyncIterator[JobEvent]:
        from websockets.asyncio.client import connect

        at = _Resume(job_id, from_seq, max_reconnects)
        while True:
            token = (await self._c._request("POST", f"{_job_path(job_id)}/stream-tokens"))["token"]
            url = self._c._s.ws_url(f"{_job_path(job_id)}/stream", {"from": at.last, "token": token})
            try:
                async with connect(url, open_timeout=self._c._s.timeout) as ws:
                    async for message in ws:
                        event = at.fresh(message)
                        if event is None:
                            continue
                        yield event
                        if event["type"] == "end":
                            return
            except (OSError, websockets.exceptions.WebSocketException):
                pass
            await asyncio.sleep(at.broke())

    async def run(self, request: JobRequest, on_output: Optional[OutputCallback] = None) -> Job:
        job_id = (await self.create(request))["id"]
        try:
            async for event in self.stream(job_id):
                if event["type"] == "log" and on_output:
                    on_output(event["stream"], event["data"])
                elif event["type"] == "end":
                    return event["job"]
        except ConnectionError:
            pass
        return await self.wait(job_id)


class AsyncAirlock:
    """asyncio client; same surface as :class:`Airlock` with ``await``."""

    def __init__(self, base_url: Optional[str] = None, api_key: Optional[str] = None, *, timeout: float = 30.0, max_retries: int = 3, max_answer_bytes: int = _MAX_ANSWER_BYTES):
        self._s = _Settings(base_url, api_key, timeout, max_retries, max_answer_bytes)
        self._http = httpx.AsyncClient(base_url=self._s.base_url, headers=self._s.headers, timeout=timeout)
        self.jobs = AsyncJobs(self)

    async def __aenter__(self) -> "AsyncAirlock":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def run(self, request: JobRequest, on_output: Optional[OutputCallback] = None) -> Job:
        return await self.jobs.run(request, on_output)

    async def runtimes(self) -> List[Runtime]:
        return (await self._request("GET", "/v1/runtimes"))["runtimes"]

    async def _request(self, method: str, path: str, *, body: Any = None, params: Optional[Dict[str, Any]] = None, idempotent: bool = True, accept: Optional[str] = None, binary: bool = False, headers: Optional[Dict[str, str]] = None) -> Any:
        attempt = 0
        while True:
            try:
                deadline = time.monotonic() + self._s.timeout
                try:
                    async with self._http.stream(method, path, json=body, params=params, headers=_headers(accept, headers)) as res:
                        got = _Body(res, self._s, deadline)
                        async for chunk in res.aiter_bytes():
                            got.take(chunk)
                except httpx.HTTPError as err:
                    raise _transport_error(err, self._s.base_url) from err
                return _answer(res, got.content(), binary)
            except AirlockError as err:
                if not _retryable(err, idempotent) or attempt >= self._s.max_retries:
                    raise
                await asyncio.sleep(_backoff(attempt, getattr(err, "retry_after", None)))
                attempt += 1
