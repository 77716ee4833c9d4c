"""The Python SDK against a real running Airlock (real Redis, real gVisor)."""
import asyncio
import base64
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

import httpx
import pytest

import airlock
from airlock import Airlock, AsyncAirlock

TICKS = 'for i in 1 2 3 4 5; do echo "tick $i"; sleep 0.3; done; echo done >&2'
EXPECTED = "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\n"


def test_run_streams_output_while_the_job_runs(client):
    seen = []
    job = client.run({"runtime": "bash", "source": TICKS}, on_output=lambda stream, data: seen.append((stream, data, time.time())))
    assert job["status"] == "succeeded"
    assert job["stdout"] == EXPECTED
    assert job["stderr"] == "done\n"
    assert "".join(d for s, d, _ in seen if s == "stdout") == EXPECTED
    finished = time.mktime(time.strptime(job["finishedAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert seen[0][2] < finished - 0.5, "the first output arrived well before the job ended"


def test_create_stream_wait_get_list_logs(client):
    accepted = client.jobs.create({"runtime": "bash", "source": TICKS})
    assert accepted["status"] == "queued"
    events = list(client.jobs.stream(accepted["id"]))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["type"] == "end"
    job = client.jobs.wait(accepted["id"])
    assert job["status"] == "succeeded"
    assert client.jobs.get(accepted["id"])["stdout"] == EXPECTED
    assert any(j["id"] == accepted["id"] for j in client.jobs.list(limit=5)["items"])
    assert all(j["status"] == "failed" for j in client.jobs.list(status=["failed"])["items"])
    assert [j["id"] for j in client.jobs.iterate(limit=1)] == [j["id"] for j in client.jobs.list(limit=100)["items"]]
    assert [j["id"] for j in client.jobs.iterate(max=2)] == [j["id"] for j in client.jobs.list(limit=2)["items"]], "max: how many in all"
    assert [j["id"] for j in client.jobs.iterate(limit=1, max=3)] == [j["id"] for j in client.jobs.list(limit=3)["items"]], "across pages"
    assert list(client.jobs.iterate(max=0)) == []
    assert client.jobs.logs(accepted["id"]).startswith("tick 1\ntick 2\n")
    batch = client.jobs.create_batch([{"runtime": "bash", "source": "echo one"}, {"runtime": "nope", "source": "x"}])
    assert (batch["accepted"], batch["refused"]) == (1, 1)
    assert batch["items"][1]["error"]["code"] == "AIRLOCK_ERR_UNKNOWN_RUNTIME"
    assert client.jobs.wait(batch["items"][0]["id"])["stdout"] == "one\n"
    submitted = client.jobs.request(accepted["id"])
    assert submitted["runtime"] == "bash" and submitted["files"][0]["content"] == TICKS and submitted["limits"]["timeoutMs"] > 0
    assert sorted(r["name"] for r in client.runtimes()) == ["bash", "c", "cpp", "go", "java", "ml-python", "node", "python", "rust"]


def test_cancel_then_conflict(client):
    job_id = client.jobs.create({"runtime": "bash", "source": "sleep 30"})["id"]
    for _ in range(200):
        if client.jobs.get(job_id)["status"] == "running":
            break
        time.sleep(0.05)
    client.jobs.cancel(job_id)
    assert client.jobs.wait(job_id)["status"] == "cancelled"
    with pytest.raises(airlock.ConflictError) as err:
        client.jobs.cancel(job_id)
    assert err.value.code == "AIRLOCK_ERR_JOB_FINISHED"


def test_a_client_logged_shows_no_key(url):
    # What a log line or a debugger shows of a client: its attributes' reprs.
    for client in (Airlock(url, "ak_do_not_log_me"), airlock.AsyncAirlock(url, "ak_do_not_log_me")):
        shown = repr(vars(client)) + repr(client) + repr(vars(client._s)) + repr(vars(client._http))
        assert "ak_do_not_log_me" not in shown, shown
        assert url in shown, "the settings still say where the client goes"


def test_each_error_class(client, url):
    with pytest.raises(airlock.AuthenticationError):
        Airlock(url, "wrong-key-123").jobs.list()
    with pytest.raises(airlock.ForbiddenError) as forbidden:
        client.jobs.create({"runtime": "bash", "source": "true", "isolation": "runc"})
    assert forbidden.value.code == "AIRLOCK_ERR_ISOLATION_FORBIDDEN" and forbidden.value.status == 403
    assert not isinstance(forbidden.value, airlock.AuthenticationError), "a good key that may not do this is not an authentication error"
    with pytest.raises(airlock.NotFoundError):
        client.jobs.get("job_00000000000000000000000000000000")
    with pytest.raises(airlock.ValidationError) as invalid:
        client.jobs.create({"runtime": "cobol", "source": "x"})
    assert invalid.value.code == "AIRLOCK_ERR_UNKNOWN_RUNTIME" and invalid.value.status == 400
    job_id = client.jobs.create({"runtime": "bash", "source": "sleep 3"})["id"]
    with pytest.raises(airlock.TimeoutError):
        client.jobs.wait(job_id, timeout=0.3)
    client.jobs.cancel(job_id)
    assert client.jobs.wait(job_id)["status"] == "cancelled"
    with pytest.raises(airlock.ConnectionError):
        Airlock("http://127.0.0.1:9", "k", max_retries=0).jobs.list()
    with pytest.raises(airlock.AirlockError) as config:
        Airlock(url, "")
    assert config.value.code == "AIRLOCK_SDK_CONFIG"
    unavailable = os.environ.get("AIRLOCK_UNAVAILABLE_URL")
    if not unavailable:
        pytest.skip("AIRLOCK_UNAVAILABLE_URL is not set: no server without isolation to refuse jobs")
    with pytest.raises(airlock.UnavailableError) as refused:
        Airlock(unavailable, os.environ["AIRLOCK_API_KEY"], max_retries=0).jobs.create({"runtime": "bash", "source": "true"})
    assert refused.value.code == "AIRLOCK_ERR_ISOLATION_UNAVAILABLE"


def test_rate_limit_carries_retry_after_and_is_retried():
    # The server has no rate limits yet (they come with tenant quotas): a tiny HTTP
    # server answers 429 once; the mapping and retry are the SDK's own code.
    calls = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            calls.append(self.path)
            if len(calls) == 1:
                body = b'{"statusCode":429,"code":"AIRLOCK_ERR_RATE_LIMITED","message":"slow down"}'
                self.send_response(429)
                self.send_header("retry-after", "0.3")
            else:
                body = b'{"items":[],"nextCursor":null}'
                self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        t0 = time.monotonic()
        assert Airlock(base, "k").jobs.list() == {"items": [], "nextCursor": None}
        assert len(calls) == 2 and time.monotonic() - t0 >= 0.28
        calls.clear()
        with pytest.raises(airlock.RateLimitError) as err:
            Airlock(base, "k", max_retries=0).jobs.list()
        assert err.value.retry_after == pytest.approx(0.3)
    finally:
        server.shutdown()


def _serving(send, calls=None):
    """A loopback server whose every GET or DELETE answers 200 JSON headers, then calls
    ``send(wfile)`` (the body ends when the connection does); ``calls`` gets each path."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if calls is not None:
                calls.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            try:
                send(self.wfile)
            except OSError:
                pass  # the client went

        do_DELETE = do_GET

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_a_path_segment_that_would_name_another_route_is_refused_before_anything_is_sent():
    # Found by review 21: httpx removes "." and ".." segments, so a job id or an artifact
    # path of dots reached another route with the caller's key.
    calls = []
    server, base = _serving(lambda out: out.write(b"{}"), calls)
    try:
        client = Airlock(base, "k", max_retries=0)
        job = "job_00000000000000000000000000000001"
        for call in [
            lambda: client.jobs.get(".."),
            lambda: client.jobs.get(""),
            lambda: client.jobs.cancel("."),
            lambda: client.jobs.logs(".."),
            lambda: client.jobs.artifact(job, "a/../../b"),
            lambda: client.jobs.artifact(job, "../x"),
            lambda: client.jobs.artifact(job, "a//b"),
            lambda: list(client.jobs.stream("..")),
        ]:
            with pytest.raises(airlock.ValidationError) as err:
                call()
            assert err.value.code == "AIRLOCK_SDK_INVALID_PATH"
        assert calls == [], "no request was sent"
        client.jobs.artifact(job, "%2e%2e/x..y/.z")
        client.jobs.get("a.b")
        assert calls == [f"/v1/jobs/{job}/artifacts/%252e%252e/x..y/.z", "/v1/jobs/a.b"]
    finally:
        server.shutdown()


def test_a_base_url_with_credentials_or_not_http_is_refused_without_echoing_them():
    # Found by review 21: "user:key@" in the base URL ended up in error messages.
    for base in ["http://user:s3cret@127.0.0.1:1", "https://:s3cret@example.test", "ftp://127.0.0.1", "nope"]:
        with pytest.raises(airlock.AirlockError) as err:
            Airlock(base, "k")
        assert err.value.code == "AIRLOCK_SDK_CONFIG"
        assert "s3cret" not in str(err.value)
    assert Airlock("https://airlock.example.test/base/", "k")


def test_an_answer_past_max_answer_bytes_or_its_time_limit_fails_the_call():
    # Found by review 21: httpx's timeout bounds each read, not the answer, so a server
    # sending a byte at a time held a call for good; and an answer that never ended filled
    # memory.
    def endless(out):
        chunk = b" " * 65536
        for _ in range(8192):  # 512 MiB at most
            out.write(chunk)

    def drip(out):
        for _ in range(300):  # 30 s at most
            out.write(b" ")
            out.flush()
            time.sleep(0.1)

    server, base = _serving(endless)
    try:
        with pytest.raises(airlock.AirlockError) as err:
            Airlock(base, "k", max_retries=0, max_answer_bytes=1 << 20).jobs.list()
        assert err.value.code == "AIRLOCK_SDK_ANSWER_TOO_LARGE"
    finally:
        server.shutdown()
    server, base = _serving(drip)
    try:
        with pytest.raises(airlock.TimeoutError):
            Airlock(base, "k", max_retries=0, timeout=0.8).jobs.list()

        async def list_async():
            async with AsyncAirlock(base, "k", max_retries=0, timeout=0.8) as client:
                return await client.jobs.list()

        with pytest.raises(airlock.TimeoutError):
            asyncio.run(list_async())
    finally:
        server.shutdown()


def test_a_submit_whose_answer_is_lost_is_retried_as_the_same_job(url, key):
    # A proxy that passes the first submit to the real server, then drops the connection
    # instead of answering: the job is made and the client never hears of it.
    keys, made = [], []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers["content-length"]))
            keys.append(self.headers.get("idempotency-key"))
            passed = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type", "idempotency-key")}
            res = httpx.post(url.rstrip("/") + self.path, content=body, headers=passed)
            made.append(res.json()["id"])
            if len(keys) == 1:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.send_response(res.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(res.content)))
            self.end_headers()
            self.wfile.write(res.content)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with Airlock(f"http://127.0.0.1:{server.server_address[1]}", key) as via_proxy:
            accepted = via_proxy.jobs.create({"runtime": "bash", "source": "true"})
        assert len(keys) == 2, "the submit was sent again after its answer was lost"
        assert keys[0] and keys[0] == keys[1], "with the same Idempotency-Key"
        assert made == [accepted["id"], accepted["id"]], "and the server made one job of both"
        with Airlock(url, key) as direct:
            assert direct.jobs.get(accepted["id"])["id"] == accepted["id"]
            other = direct.jobs.create({"runtime": "bash", "source": "true"})
            assert other["id"] != accepted["id"], "each call has its own key"
    finally:
        server.shutdown()


class CuttableProxy:
    """A TCP proxy to the server whose connections can be cut mid-stream."""

    def __init__(self, target_url: str):
        host, port = target_url.split("//")[1].split(":")
        self.target = (host, int(port.rstrip("/")))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        for s in self.sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.sockets.clear()

    def close(self):
        self.cut()
        self.listener.close()


def test_a_cut_stream_resumes_without_losing_or_repeating_events(url, key):
    proxy = CuttableProxy(url)
    try:
        with Airlock(f"http://127.0.0.1:{proxy.port}", key) as via_proxy:
            job_id = via_proxy.jobs.create({"runtime": "bash", "source": TICKS})["id"]
            events, cut = [], False
            for event in via_proxy.jobs.stream(job_id):
                events.append(event)
                if not cut and event["type"] == "log":
                    cut = True
                    proxy.cut()
        assert cut
        assert proxy.connections >= 3, "the SDK reconnected"
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert "".join(e["data"] for e in events if e["type"] == "log" and e["stream"] == "stdout") == EXPECTED
        assert events[-1]["type"] == "end"
    finally:
        proxy.close()


def test_asyncio_client(url, key):
    async def main():
        async with AsyncAirlock(url, key) as client:
            out = []
            job = await client.run({"runtime": "python", "source": "print('from asyncio')"}, on_output=lambda s, d: out.append(d))
            assert job["status"] == "succeeded" and "".join(out) == "from asyncio\n"
            accepted = await client.jobs.create({"runtime": "bash", "source": TICKS})
            events = [e async for e in client.jobs.stream(accepted["id"])]
            assert events[-1]["type"] == "end" and events[-1]["job"]["stdout"] == EXPECTED
            assert (await client.jobs.wait(accepted["id"]))["status"] == "succeeded"
            assert any(j["id"] == accepted["id"] for j in (await client.jobs.list())["items"])
            assert (await client.jobs.request(accepted["id"]))["files"][0]["content"] == TICKS
            assert (await client.jobs.create_batch([{"runtime": "bash", "source": "true"}]))["accepted"] == 1
            with pytest.raises(airlock.NotFoundError):
                await client.jobs.get("job_00000000000000000000000000000000")
            newest = [j["id"] for j in (await client.jobs.list(limit=100))["items"]]
            assert [j["id"] async for j in client.jobs.iterate(limit=1)] == newest, "iterate walks every page"
            assert [j["id"] async for j in client.jobs.iterate(max=2)] == newest[:2], "max: how many in all"

    asyncio.run(main())


def test_artifacts_come_back_byte_for_byte_and_binary_files_go_in(client, url, key):
    data = bytes(range(256)) * 8
    job = client.run({
        "runtime": "bash",
        "files": [
            {"path": "main.sh", "content": "mkdir -p out/deep && cp data.bin out/deep/copy.bin"},
            {"path": "data.bin", "content": base64.b64encode(data).decode(), "encoding": "base64"},
        ],
    })
    assert job["status"] == "succeeded", job["stderr"]
    assert job["artifacts"] == [{"path": "deep/copy.bin", "bytes": len(data), "contentType": "application/octet-stream"}]
    assert client.jobs.artifact(job["id"], "deep/copy.bin") == data
    with pytest.raises(airlock.NotFoundError):
        client.jobs.artifact(job["id"], "not-there")

    async def main():
        async with AsyncAirlock(url, key) as aclient:
            assert await aclient.jobs.artifact(job["id"], "deep/copy.bin") == data

    asyncio.run(main())
