"""A local HTTP server that speaks OpenAI's chat-completions protocol, for tests.

Not a mock of our code: our real provider talks real HTTP to it. It stands in for the
one boundary we cannot reach here (a paid LLM API) and lets a test script failures:
``server.script(prompt, [Reply(429, retry_after=1), Reply(500), Reply(200)])`` makes the
n-th call with that last user message get the n-th reply (then 200s). It records every
call (time, prompt, model) and the peak number of calls in flight.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    retry_after: float | None = None
    delay_s: float = 0.0  # sleep before answering (a timeout test sets this above the client's timeout)
    content: str | None = None  # the assistant's text for a 200
    echo_auth: bool = False  # an error body that quotes the Authorization header (a careless provider)


@dataclass
class Call:
    at: float
    prompt: str
    model: str
    status: int


@dataclass
class OpenAIServer:
    latency_s: float = 0.0
    # (messages, model) -> the assistant's text, or None for the default echo: a judge that reads
    # the prompt it was sent. Used when no script is queued for the prompt.
    responder: Callable[[list[dict[str, Any]], str], str | None] | None = None
    calls: list[Call] = field(default_factory=list)
    _scripts: dict[str, list[Reply]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    in_flight: int = 0
    auth_headers: set[str] = field(default_factory=set)  # every Authorization value received
    peak_in_flight: int = 0
    httpd: ThreadingHTTPServer | None = None

    def script(self, prompt: str, replies: list[Reply]) -> None:
        with self._lock:
            self._scripts[prompt] = list(replies)

    def calls_for(self, prompt: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.prompt == prompt]

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def _next_reply(self, prompt: str) -> Reply:
        with self._lock:
            queue = self._scripts.get(prompt)
            return queue.pop(0) if queue else Reply()

    def start(self) -> OpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                payload = json.loads(self.rfile.read(length) or b"{}")
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": "not found", "type": "invalid_request_error"}})
                    return
                with server._lock:
                    server.auth_headers.add(self.headers.get("authorization") or "")
                server._handle(self, payload)

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def _handle(self, h: Any, payload: dict[str, Any]) -> None:
        messages = payload.get("messages") or []
        prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        reply = self._next_reply(prompt)
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.calls.append(Call(time.time(), prompt, str(payload.get("model")), reply.status))
        try:
            time.sleep(self.latency_s + reply.delay_s)
            if reply.status != 200:
                headers = {"retry-after": f"{reply.retry_after:g}"} if reply.retry_after is not None else {}
                message = f"scripted {reply.status}"
                if reply.echo_auth:
                    message += f"; you sent Authorization: {h.headers.get('authorization')}"
                h._send(reply.status, {"error": {"message": message, "type": "server_error",
                                                 "code": str(reply.status)}}, headers)
                return
            text = reply.content
            if text is None and self.responder is not None:
                text = self.responder(messages, str(payload.get("model")))
            text = text if text is not None else f"echo: {prompt[:60]}"
            h._send(200, completion(str(payload.get("model")), text, prompt))
        finally:
            with self._lock:
                self.in_flight -= 1

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


def completion(model: str, text: str, prompt: str) -> dict[str, Any]:
    pt, ct = max(1, len(prompt.split())), max(1, len(text.split()))
    return {"id": f"chatcmpl-{abs(hash((model, prompt))) % 10**12}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct}}
