"""GLIDER's global router: keys, queries, alpha * cos, and composition with base policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routing.base import RouteRequest, RoutingContext, get_policy
from switchyard.routing.glider import REWRITE_PROMPT, GliderPolicy, keyphrases, leading_text, train_keys, winners
from switchyard.routing.quality import TrainConfig
from switchyard.routing.tagrouter import TagRouterPolicy
from switchyard.routing.tryage import TryagePolicy
from tests.support.openai_server import OpenAIServer, Reply
from tests.switchyard.routing.test_quality import (
    TOPICS,
    context,
    hash_embed,
    make_prompts,
    requests_for,
    synthetic_catalog,
    synthetic_train,
)


@pytest.fixture(scope="module")
def tryage() -> TryagePolicy:
    p = TryagePolicy(ensemble=1, flags={"cost": 1.0}, train_config=TrainConfig(epochs=60, patience=8))
    p.fit(synthetic_train(), synthetic_catalog(), context())
    return p


def test_leading_text_is_the_first_line_capped() -> None:
    assert leading_text("\n\n  Fix this bug please.\nTraceback: ...") == "Fix this bug please."
    assert leading_text(" ".join(str(i) for i in range(50)), max_words=5) == "0 1 2 3 4"
    assert leading_text("   \n ") == ""


def test_winners_need_a_worse_model() -> None:
    q = np.array([[0.9, 0.1, np.nan], [0.5, 0.5, 0.5], [0.2, 0.8, 0.8], [np.nan, np.nan, np.nan]])
    assert winners(q).tolist() == [[True, False, False], [False, False, False], [False, True, True],
                                   [False, False, False]]


def test_train_keys_describe_where_each_model_wins() -> None:
    keys = train_keys(synthetic_train())
    assert "tiny" not in keys  # never the best anywhere
    assert keys["coder"].startswith("best on: ")
    assert any(w in keys["coder"] for w in TOPICS["python"])
    assert any(w in keys["chef"] for w in TOPICS["cooking"])
    assert any(w in keys["big"] for w in TOPICS["law"])
    assert not any(w in keys["coder"] for w in TOPICS["cooking"])
    mask = np.array([True, True, True, False, False, False])
    terms = [{"alpha", "beta"}, {"alpha"}, {"alpha", "gamma"}, {"beta"}, {"beta"}, {"gamma"}]
    assert keyphrases(terms, mask, k=2, min_df=2) == ["alpha"]


def test_keys_table_sources() -> None:
    cat = synthetic_catalog()
    g = GliderPolicy(keys="auto", artifact=Path("/nonexistent"))
    g.fit(synthetic_train(), cat, context())
    auto = g.keys_table(cat)
    assert auto["coder"] == {"key": "writes python code and fixes bugs", "source": "catalog"}
    assert auto["big"]["source"] == "train" and "tiny" not in auto
    g.key_mode = "catalog"
    assert set(g.keys_table(cat)) == {"coder", "chef"}
    g.key_mode = "train"
    assert {v["source"] for v in g.keys_table(cat).values()} == {"train"}


def test_glider_alone_follows_the_keys() -> None:
    cat = synthetic_catalog()
    g = get_policy("glider", keys="catalog")
    assert isinstance(g, GliderPolicy) and g.name == "glider" and g.knob_name == "lambda"
    reqs = requests_for(["python code with bugs, please fix", "sauces and baking recipes for cooking"])
    ds = g.decide_batch(reqs, cat, context(knob=0.0))
    assert [d.model for d in ds] == ["coder", "chef"]
    assert all(d.policy == "glider" and not d.fallback for d in ds)
    bare = synthetic_catalog()
    for m in bare.models:
        m.description = ""
    none = g.decide_batch(reqs, bare, context())
    assert all(d.fallback and "no key" in d.reason for d in none)


def test_alpha_zero_composition_is_the_base(tryage: TryagePolicy) -> None:
    cat = synthetic_catalog()
    prompts, _ = make_prompts(30, seed=4)
    g = GliderPolicy(base=tryage, alpha=0.0, keys="catalog")
    assert g.name == "glider+tryage" and g.knob_name == "lambda" and g.knob_grid(21) == tryage.knob_grid(21)
    for lam in (0.0, 0.2, 5.0):
        a = tryage.decide_batch(requests_for(prompts), cat, context(knob=lam))
        b = g.decide_batch(requests_for(prompts), cat, context(knob=lam))
        assert [d.model for d in a] == [d.model for d in b]
        assert all(d.policy == "glider+tryage" and d.details["glider"]["base"] == "tryage" for d in b)


def test_alpha_shifts_the_base_scores(tryage: TryagePolicy) -> None:
    cat = synthetic_catalog()
    # law prompts (big is best), but the leading line reads like the coder's key
    reqs = requests_for([f"python code bugs fix\n{p}" for p in make_prompts(12, seed=6)[0]])
    g = GliderPolicy(base=tryage, alpha=3.0, keys="catalog")
    off = g.offsets(reqs, cat, RoutingContext(embed_fn=hash_embed))
    ids = cat.ids()
    keyed = [ids.index("coder"), ids.index("chef")]
    assert np.allclose(off[:, keyed].sum(axis=1), 0.0) and np.all(off[:, ids.index("big")] == 0.0)
    base = tryage.score_batch(reqs, cat, context())
    assert np.allclose(g.score_batch(reqs, cat, context()), base + off, equal_nan=True)
    assert {d.model for d in g.decide_batch(reqs, cat, context(knob=0.0))} == {"coder"}


@pytest.fixture(scope="module")
def tagged_train():
    train = synthetic_train()
    topic_of = {w: t for t, ws in TOPICS.items() for w in ws}
    train.tags = [sorted({topic_of[w] for w in p.split() if w in topic_of}) for p in train.prompts]
    return train


def test_glider_tagrouter_uses_tagrouters_own_rule(tagged_train) -> None:
    cat = synthetic_catalog()
    plain = get_policy("tagrouter")
    plain.fit(tagged_train, cat, context())  # type: ignore[attr-defined]
    zero = get_policy("glider+tagrouter", alpha=0.0, keys="catalog")
    zero.fit(tagged_train, cat, context())  # type: ignore[attr-defined]
    assert isinstance(zero, GliderPolicy) and isinstance(zero.base, TagRouterPolicy)
    reqs = [RouteRequest(id=f"q{i}", prompt=f"{t} question {i}", tags=[t], input_tokens=50)
            for i, t in enumerate(["python", "cooking", "law"] * 3)]
    for theta in plain.knob_grid(21)[::4]:
        a = plain.decide_batch(reqs, cat, context(knob=theta))
        b = zero.decide_batch(reqs, cat, context(knob=theta))
        assert [d.model for d in a] == [d.model for d in b]
    d = b[0]
    assert d.policy == "glider+tagrouter" and "S" in d.details and "theta" in d.details  # TagRouter's decision
    strong = get_policy("glider+tagrouter", alpha=50.0, keys="catalog")
    strong.fit(tagged_train, cat, context())  # type: ignore[attr-defined]
    law = [RouteRequest(id="z", prompt="recipes cooking baking sauces", tags=["law"], input_tokens=50)]
    assert plain.decide_batch(law, cat, context(knob=0.0))[0].model == "big"
    assert strong.decide_batch(law, cat, context(knob=0.0))[0].model == "chef"


def test_generic_composition_never_costs_more(tryage: TryagePolicy) -> None:
    cat = synthetic_catalog()
    knn = get_policy("knn", k=5)
    knn.fit(synthetic_train(), cat, context())  # type: ignore[attr-defined]
    g = GliderPolicy(base=knn, alpha=50.0, keys="catalog")
    prompts, _ = make_prompts(30, seed=12)
    ctx = RoutingContext(knob=0.5, embed_fn=hash_embed)
    a = knn.decide_batch(requests_for(prompts), cat, ctx)
    b = g.decide_batch(requests_for(prompts), cat, ctx)
    assert all(cat.get(y.model).predicted_cost(50) <= cat.get(x.model).predicted_cost(50) + 1e-15
               for x, y in zip(a, b, strict=True))
    assert any(x.model != y.model for x, y in zip(a, b, strict=True))  # alpha does act
    assert all(d.policy == "glider+knn" for d in b)


def test_train_keys_artifact(tmp_path: Path) -> None:
    g = GliderPolicy(keys="train")
    g.fit(synthetic_train(), synthetic_catalog(), context())
    g.save(tmp_path / "glider.pt")
    loaded = GliderPolicy(keys="train", artifact=tmp_path / "glider.pt")
    assert loaded.keys_table() == g.keys_table()
    assert loaded.keys_table()["coder"]["source"] == "train"


def test_query_rewrite_through_a_provider(openai_server: OpenAIServer) -> None:
    cat = synthetic_catalog({"local": {"kind": "openai", "base_url": openai_server.url}},
                            rewriter={"usd_per_mtok_input": 0.1, "usd_per_mtok_output": 0.1, "provider": "local"})
    prompt = "hey so I have this thing in my kitchen\nand I want to make bread from flour"
    openai_server.script(REWRITE_PROMPT.format(prompt=prompt), [Reply(content="Bake bread from flour.")])
    openai_server.script(REWRITE_PROMPT.format(prompt="other"), [Reply(500)])
    g = GliderPolicy(keys="catalog", rewrite_model="rewriter")
    got = g.queries(requests_for([prompt, "other"]), context(), cat)
    assert got == ["Bake bread from flour.", "other"]  # the failed call keeps the leading text
    assert openai_server.calls[0].model == "rewriter"
