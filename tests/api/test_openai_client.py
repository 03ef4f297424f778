"""The official openai client against the real API, real workers and a real broker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import Api
from tests.support.openai_server import Reply


def client(api: Api, who: str = "alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{api.url}/v1", api_key=api.keys[who], max_retries=0)


def wait_batch(c: openai.OpenAI, batch_id: str, timeout_s: float = 120) -> openai.types.Batch:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        b = c.batches.retrieve(batch_id)
        if b.status in ("completed", "failed", "cancelled", "expired"):
            return b
        time.sleep(0.2)
    raise TimeoutError(batch_id)


def line(cid: str, content: str, model: str = "switchyard/auto") -> str:
    return json.dumps({"custom_id": cid, "method": "POST", "url": "/v1/chat/completions",
                       "body": {"model": model, "messages": [{"role": "user", "content": content}],
                                "max_tokens": 8}})


def test_batch_lifecycle_with_the_openai_client(api: Api, tmp_path: Path) -> None:
    c = client(api)
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([line("a", "alpha"), line("b", "beta", model="strong"), "{oops",
                              line("c", "gamma")]) + "\n")
    f = c.files.create(file=src.open("rb"), purpose="batch")
    assert f.bytes == src.stat().st_size and c.files.retrieve(f.id).filename == "in.jsonl"
    b = c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h",
                         metadata={"team": "search"})
    done = wait_batch(c, b.id)
    assert done.status == "completed" and done.metadata == {"team": "search"}
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 3, 1)
    outs = [json.loads(x) for x in c.files.content(done.output_file_id).text.splitlines()]
    errs = [json.loads(x) for x in c.files.content(done.error_file_id).text.splitlines()]
    assert sorted(o["custom_id"] for o in outs) == ["a", "b", "c"]
    assert [e["error"]["line"] for e in errs] == [3]
    by_id = {o["custom_id"]: o for o in outs}
    assert by_id["a"]["switchyard"]["model"] == "cheap" and by_id["b"]["switchyard"]["model"] == "strong"
    listed = c.batches.list(limit=10)
    assert b.id in [x.id for x in listed.data]


def test_cancel_a_running_batch(api: Api, tmp_path: Path) -> None:
    c = client(api)
    for i in range(40):  # 40 x 2 s at 8 in flight: about 10 s of work, cancelled after ~2 s
        api.upstream.script(f"slow-{i}", [Reply(200, delay_s=2.0)])
    src = tmp_path / "slow.jsonl"
    src.write_text("\n".join(line(f"s{i}", f"slow-{i}") for i in range(40)) + "\n")
    b = c.batches.create(input_file_id=c.files.create(file=src.open("rb"), purpose="batch").id,
                         endpoint="/v1/chat/completions", completion_window="24h")
    time.sleep(2.0)
    assert c.batches.cancel(b.id).status in ("cancelling", "cancelled")
    done = wait_batch(c, b.id)
    assert done.status == "cancelled"
    total = done.request_counts.completed + done.request_counts.failed
    assert total == 40 and done.request_counts.completed < 40  # stopped early, every line accounted for


def test_idempotency_key_returns_the_same_batch(api: Api, tmp_path: Path) -> None:
    c = client(api)
    src = tmp_path / "one.jsonl"
    src.write_text(line("x", "idempotent") + "\n")
    fid = c.files.create(file=src.open("rb"), purpose="batch").id
    ids = {c.batches.create(input_file_id=fid, endpoint="/v1/chat/completions", completion_window="24h",
                            extra_headers={"Idempotency-Key": "k-1"}).id for _ in range(3)}
    assert len(ids) == 1


def test_chat_completion_routes_through_the_queues(api: Api) -> None:
    c = client(api)
    raw = c.chat.completions.with_raw_response.create(model="switchyard/auto",
                                                      messages=[{"role": "user", "content": "hello router"}])
    completion = raw.parse()
    assert completion.choices[0].message.content == "echo: hello router"
    assert raw.headers["x-switchyard-model"] == "cheap"
    extra = completion.model_extra or {}
    assert extra["switchyard"]["policy"] == "cheapest" and completion.usage is not None
    direct = c.chat.completions.create(model="strong", messages=[{"role": "user", "content": "direct"}])
    assert direct.model == "strong"
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="gpt-99", messages=[{"role": "user", "content": "x"}])


ROUTES = [("POST", "/v1/files"), ("GET", "/v1/files/file-x"), ("GET", "/v1/files/file-x/content"),
          ("POST", "/v1/batches"), ("GET", "/v1/batches"), ("GET", "/v1/batches/b"),
          ("POST", "/v1/batches/b/cancel"), ("POST", "/v1/chat/completions"), ("POST", "/v1/route"),
          ("POST", "/v1/feedback"), ("GET", "/v1/scores"), ("GET", "/v1/models")]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_v1_route_refuses_missing_and_wrong_keys(api: Api, method: str, path: str) -> None:
    for headers in ({}, {"Authorization": "Bearer sy-nope-nope"}, {"Authorization": "Bearer garbage"}):
        r = httpx.request(method, api.url + path, headers=headers)
        assert r.status_code == 401, (path, headers, r.text)
        assert r.json()["error"]["type"] == "authentication_error"


def test_one_key_cannot_read_another_keys_batch(api: Api, tmp_path: Path) -> None:
    alice, bob = client(api, "alice"), client(api, "bob")
    src = tmp_path / "mine.jsonl"
    src.write_text(line("p", "private") + "\n")
    f = alice.files.create(file=src.open("rb"), purpose="batch")
    b = alice.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
    for call in (lambda: bob.batches.retrieve(b.id), lambda: bob.files.retrieve(f.id),
                 lambda: bob.batches.cancel(b.id)):
        with pytest.raises(openai.NotFoundError):
            call()
    assert b.id not in [x.id for x in bob.batches.list().data]
    with pytest.raises(openai.NotFoundError):  # bob cannot start a batch from alice's file either
        bob.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")


def test_health_and_metrics_match_what_ran(api: Api) -> None:
    h = httpx.get(api.url + "/healthz").json()
    assert h["status"] == "ok" and h["database"] == "ok" and len(h["workers"]) >= 2
    c = client(api)
    c.chat.completions.create(model="strong", messages=[{"role": "user", "content": "count me"}])
    text = httpx.get(api.url + "/metrics").text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for fam in text_string_to_metric_families(text) for s in fam.samples}
    from sqlmodel import select

    from switchyard.store.db import session_scope
    from switchyard.store.models import Request

    with session_scope(api.system.settings) as s:
        succeeded = len(list(s.exec(select(Request).where(Request.state == "succeeded"))))
        strong = len(list(s.exec(select(Request).where(Request.model == "strong"))))
    assert samples[("switchyard_requests", (("state", "succeeded"),))] == succeeded
    assert samples[("switchyard_routed_requests_total", (("model", "strong"), ("policy", "explicit")))] == strong
    assert ("switchyard_queue_depth", (("queue", "dispatch"),)) in samples
    assert samples[("switchyard_tagging_batch_size_count", ())] >= 1
    routed, finished = (samples[(f"switchyard_stage_{s}_seconds_count", ())] for s in ("route", "total"))
    assert routed == finished
    assert samples[("switchyard_dispatch_latency_seconds_count", ())] >= strong


def test_openapi_schema_lists_every_route_with_bearer_auth(api: Api) -> None:
    schema = httpx.get(api.url + "/openapi.json").json()
    paths = {(m.upper(), p) for p, ops in schema["paths"].items() for m in ops}
    templated = {"file-x": "{file_id}", "b": "{batch_id}"}
    expected = {(m, "/".join(templated.get(part, part) for part in p.split("/"))) for m, p in ROUTES}
    assert expected <= paths
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert "security" in schema["paths"]["/v1/batches"]["post"]
    assert "security" not in schema["paths"]["/healthz"]["get"]


def test_concurrent_chats_are_coalesced_into_one_tagging_batch(api: Api) -> None:
    from concurrent.futures import ThreadPoolExecutor

    c = client(api)

    def ask(i: int) -> dict[str, object]:
        r = c.chat.completions.create(model="switchyard/auto", messages=[{"role": "user", "content": f"co {i}"}])
        assert r.choices[0].message.content == f"echo: co {i}"
        return dict((r.model_extra or {})["switchyard"])

    with ThreadPoolExecutor(8) as pool:
        metas = list(pool.map(ask, range(8)))
    sizes = [int(m["details"]["interactive_batch"]) for m in metas]  # type: ignore[index]
    assert max(sizes) > 1, sizes  # at least one tagging call served several chats at once
    assert all(m["model"] == "cheap" for m in metas)


def test_oversize_upload_is_refused_with_413_and_nothing_kept(api: Api, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.config import reset_settings

    monkeypatch.setenv("SWITCHYARD_MAX_UPLOAD_LINES", "3")
    reset_settings()
    try:
        src = tmp_path / "big.jsonl"
        src.write_text("\n".join(line(f"b{i}", "x") for i in range(10)) + "\n")
        before = set((api.system.data_dir / "files" / "uploads").glob("*"))
        with pytest.raises(openai.APIStatusError) as e:
            client(api).files.create(file=src.open("rb"), purpose="batch")
        assert e.value.status_code == 413
        assert set((api.system.data_dir / "files" / "uploads").glob("*")) == before
    finally:
        monkeypatch.delenv("SWITCHYARD_MAX_UPLOAD_LINES")
        reset_settings()


@pytest.mark.parametrize("bad_id", ["../../etc/passwd", "file-out-../../x", "file-err-' OR 1=1 --",
                                    "batch_%", "'; DROP TABLE job; --"])
def test_guessed_and_hostile_ids_are_plain_404s(api: Api, bad_id: str) -> None:
    headers = {"Authorization": f"Bearer {api.keys['alice']}"}
    quoted = httpx.URL(api.url + "/v1/files/x").copy_with(path="/v1/files/" + bad_id.replace("/", "%2F"))
    for url in (quoted, api.url + "/v1/batches/" + bad_id.replace("/", "%2F")):
        r = httpx.get(url, headers=headers)
        assert r.status_code == 404, (url, r.text)
    assert client(api).batches.list().data is not None  # the tables are still there
