"""schemathesis fuzzes every operation of the OpenAPI schema over real HTTP: no 5xx, and
another tenant's ids never read anything."""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from tests.api.conftest import Api

EXAMPLES_PER_OPERATION = 30


def _schema(api: Api) -> Any:
    return schemathesis.openapi.from_url(f"{api.url}/openapi.json")


def _operations(api: Api) -> list[Any]:
    ops = [r.ok() for r in _schema(api).get_all_operations()]
    assert len(ops) >= 10, [o.label for o in ops]
    return ops


def _fuzz(op: Any, api: Api, headers: dict[str, str], seen: Counter[int],
          on_case: Any = None) -> None:
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        if on_case is not None:
            on_case(case)
        resp = case.call(base_url=api.url, headers=headers, timeout=30)
        seen[resp.status_code] += 1
        # not_a_server_error: any 5xx fails, with the request to reproduce it.
        case.validate_response(resp, checks=[not_a_server_error])

    run()


def test_every_operation_fuzzed_with_a_valid_key_gives_no_5xx(api: Api) -> None:
    seen: Counter[int] = Counter()
    ops = _operations(api)
    for op in ops:
        _fuzz(op, api, {"Authorization": f"Bearer {api.keys['alice']}"}, seen)
    print(f"fuzzed {len(ops)} operations: status counts {dict(seen)}")
    assert sum(seen.values()) >= len(ops) * 3
    assert not [s for s in seen if s >= 500], seen
    # The fuzzer reached past validation, not only 401/422s.
    assert any(200 <= s < 300 for s in seen) and any(400 <= s < 500 for s in seen), seen


def _alice_ids(api: Api) -> dict[str, str]:
    hdr = {"Authorization": f"Bearer {api.keys['alice']}"}
    line = {"custom_id": "secret-a", "prompt": "alice's private prompt"}
    f = requests.post(f"{api.url}/v1/files", headers=hdr, data={"purpose": "batch"},
                      files={"file": ("a.jsonl", io.BytesIO((json.dumps(line) + "\n").encode()))}, timeout=30)
    assert f.status_code == 200, f.text
    b = requests.post(f"{api.url}/v1/batches", headers=hdr, json={
        "input_file_id": f.json()["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}, timeout=30)
    assert b.status_code == 200, b.text
    return {"file_id": f.json()["id"], "batch_id": b.json()["id"]}


def test_another_tenants_ids_under_fuzzing_read_nothing(api: Api) -> None:
    ids = _alice_ids(api)
    seen: Counter[int] = Counter()
    leaks: list[str] = []
    ops = [op for op in _operations(api) if any(p in op.path for p in ("{file_id}", "{batch_id}"))]
    assert ops, "no operation takes a file or batch id"

    def use_alices_ids(case: Any) -> None:
        # Every id-taking path gets alice's real id; the rest of the request stays fuzzed.
        case.path_parameters = {k: ids[k] for k in (case.path_parameters or {}) if k in ids}

    bob = {"Authorization": f"Bearer {api.keys['bob']}"}
    for op in ops:
        _fuzz(op, api, bob, seen, on_case=use_alices_ids)
    for op in ops:  # and once more, checking the bodies
        path = op.path.format(**ids)
        r = requests.request(op.method.upper(), f"{api.url}{path}", headers=bob, timeout=30)
        if r.status_code < 400 or "secret-a" in r.text or "alice's private prompt" in r.text:
            leaks.append(f"{op.method} {path}: {r.status_code} {r.text[:200]}")
    assert leaks == []
    assert set(seen) <= {404, 422}, seen  # never 200/403: an id of another tenant does not exist
    listing = requests.get(f"{api.url}/v1/batches", headers=bob, timeout=30).json()
    assert ids["batch_id"] not in json.dumps(listing)


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(method=st.sampled_from(["GET", "POST"]), path=st.sampled_from(["/v1/files/", "/v1/batches/"]),
       tail=st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=40))
def test_guessed_ids_and_traversal_attempts_are_4xx(api: Api, method: str, path: str, tail: str) -> None:
    quoted = requests.utils.quote(tail, safe="")
    r = requests.request(method, f"{api.url}{path}{quoted}", headers={"Authorization": f"Bearer {api.keys['bob']}"},
                         timeout=30)
    assert 400 <= r.status_code < 500, (tail, r.status_code, r.text[:200])


@pytest.fixture(autouse=True)
def _api_ready(api: Api) -> None:
    assert requests.get(f"{api.url}/healthz", timeout=10).status_code in (200, 503)
