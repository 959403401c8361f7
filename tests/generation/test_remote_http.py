"""The remote backend's HTTP layer and capability checks against a tiny local stub server
(no vLLM): retries with backoff on 429 / 5xx / refused connections, no retry on other 4xx,
the bound on requests in flight, and a plain OpenAI-style server that offers generation
only. The real server is exercised in test_remote_backend.py."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from generation.backends import BackendError, SamplingConfig, ScoreRequest
from generation.backends.remote import RemoteBackend, UnsupportedOperationError
from generation.backends.remote_http import (
    RemoteClient,
    RemoteRequestError,
    RemoteUnavailableError,
    RetryPolicy,
)
from generation.backends.vllm_serve import free_port

FAST = RetryPolicy(attempts=4, backoff=0.01, jitter=False)


class Stub:
    """Answers POSTs from a script of (status, body) pairs, then 200s; serves /v1/models."""

    def __init__(self, script=(), delay: float = 0.0) -> None:
        self.script, self.delay = list(script), delay
        self.calls, self.in_flight, self.peak = [], 0, 0
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                if self.path == "/v1/models":
                    self._send(200, {"data": [{"id": "stub", "max_model_len": 128}]})
                else:
                    self._send(404, {"error": {"message": "no such route"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                status, answer = stub.answer(self.path, body, self.headers)
                self._send(status, answer)

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, body: dict, headers) -> tuple[int, dict]:
        with self.lock:
            self.calls.append((path, body, headers.get("authorization")))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            scripted = self.script.pop(0) if self.script else None
        time.sleep(self.delay)
        with self.lock:
            self.in_flight -= 1
        if scripted is not None:
            return scripted
        message = {"role": "assistant", "content": f"echo {body.get('seed')}"}
        choices = [{"index": i, "message": message, "finish_reason": "stop"}
                   for i in range(body.get("n", 1))]
        return 200, {"choices": choices}


@pytest.fixture
def stub():
    made = []

    def make(*args, **kwargs) -> Stub:
        made.append(Stub(*args, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.server.shutdown()


def test_429_and_5xx_are_retried_with_backoff_then_succeed(stub):
    server = stub([(429, {"error": "slow down"}), (503, {}), (500, {})])
    client = RemoteClient(base_url=server.url, retry=FAST)
    assert client.post_all("/v1/x", [{"a": 1}]) == [{"choices": [
        {"index": 0, "message": {"role": "assistant", "content": "echo None"},
         "finish_reason": "stop"}]}]
    assert len(server.calls) == 4 and client.retries_done == 3


def test_other_4xx_fail_at_once_with_the_servers_message(stub):
    server = stub([(400, {"error": {"message": "max_tokens is too large"}})])
    client = RemoteClient(base_url=server.url, retry=FAST)
    with pytest.raises(RemoteRequestError, match="max_tokens is too large") as caught:
        client.post_all("/v1/x", [{}])
    assert caught.value.status == 400 and len(server.calls) == 1


def test_retries_run_out_into_an_error_naming_the_server_and_the_last_failure(stub):
    server = stub([(502, {})] * 10)
    client = RemoteClient(base_url=server.url, retry=FAST)
    with pytest.raises(RemoteUnavailableError, match=r"after 4 attempt\(s\): HTTP 502"):
        client.post_all("/v1/x", [{}])
    assert len(server.calls) == 4


def test_a_refused_connection_is_retried_then_reported():
    url = f"http://127.0.0.1:{free_port()}"  # nobody listens there
    client = RemoteClient(base_url=url, retry=FAST)
    with pytest.raises(RemoteUnavailableError, match="ConnectError"):
        client.post_all("/v1/x", [{}])
    assert client.retries_done == 3


def test_backoff_doubles_up_to_the_cap_and_honours_retry_after():
    policy = RetryPolicy(backoff=0.5, max_wait=3.0, jitter=False)
    assert [policy.wait(k) for k in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.wait(0, retry_after=2.5) == 2.5


def test_requests_in_flight_never_exceed_the_bound(stub):
    server = stub(delay=0.05)
    client = RemoteClient(base_url=server.url, max_in_flight=3, retry=FAST)
    answers = client.post_all("/v1/x", [{"seed": i} for i in range(12)])
    assert [a["choices"][0]["message"]["content"] for a in answers] == [
        f"echo {i}" for i in range(12)
    ]  # answers come back in request order
    assert server.peak == 3


def test_a_plain_openai_server_without_a_tokenizer_offers_generation_only(stub, monkeypatch):
    server = stub()
    monkeypatch.setenv("STUB_KEY", "s3cret")
    backend = RemoteBackend("", base_url=server.url, served_name="stub", api_key_env="STUB_KEY")
    assert backend.capabilities == {"generate"} and not backend.is_vllm
    rows = backend.generate([[{"role": "user", "content": "hi"}]], SamplingConfig(n=3, seed=4))
    assert [c.text for c in rows[0]][0].startswith("echo ") and len(rows[0]) == 3
    path, body, auth = server.calls[-1]
    assert path == "/v1/chat/completions" and body["model"] == "stub" and body["n"] == 3
    assert auth == "Bearer s3cret" and "return_token_ids" not in body
    with pytest.raises(UnsupportedOperationError, match="needs a vLLM server"):
        backend.score([ScoreRequest(messages=[{"role": "user", "content": "hi"}],
                                    continuation="x")])


def test_an_unknown_served_name_or_a_missing_key_variable_fail_clearly(stub, monkeypatch):
    server = stub()
    with pytest.raises(BackendError, match=r"serves no model 'other' \(it serves \['stub'\]\)"):
        RemoteBackend("", base_url=server.url, served_name="other")
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    with pytest.raises(BackendError, match="NOT_SET_KEY is not set"):
        RemoteBackend("", base_url=server.url, served_name="stub", api_key_env="NOT_SET_KEY")
