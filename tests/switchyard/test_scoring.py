"""TagScorer maths: counts -> rates -> scores, shrinkage, tag weights, new models, the cost rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from switchyard.scoring import (
    GLOBAL_TAG,
    ScorerConfig,
    ScoreTable,
    TagCounts,
    TagScorer,
    cheapest_within,
    pairwise_verdicts,
    quality_verdict,
    theta_grid,
)

NO_PRIOR = 1e-9  # prior_strength ~ 0: rates are the raw mean reward


def _verdict_rows(tag: str, model: str, win: int, tie: int, loss: int) -> list[dict]:
    return ([{"tags": [tag], "model": model, "verdict": "win"}] * win
            + [{"tags": [tag], "model": model, "verdict": "tie"}] * tie
            + [{"tags": [tag], "model": model, "verdict": "loss"}] * loss)


# --- the score formula ------------------------------------------------------------------
def test_score_is_weight_times_reward_rate_with_configured_rewards() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("python", "a", win=6, tie=3, loss=1))
    counts.add_outcomes(_verdict_rows("python", "b", win=1, tie=1, loss=8))
    cfg = ScorerConfig(s_win=2.0, s_tie=0.5, s_loss=-3.0, prior_strength=NO_PRIOR, weighting="uniform")
    table = TagScorer(cfg).table(counts)
    # rate = (n_win s_win + n_tie s_tie + n_loss s_loss) / n, score = w_t * rate with w_t = 1
    assert table.score("a", "python") == pytest.approx((6 * 2.0 + 3 * 0.5 + 1 * -3.0) / 10)
    assert table.score("b", "python") == pytest.approx((1 * 2.0 + 1 * 0.5 + 8 * -3.0) / 10)
    # the defaults are the s_win=1, s_tie=0.15, s_loss=-1
    d = TagScorer(ScorerConfig(prior_strength=NO_PRIOR, weighting="uniform")).table(counts)
    assert d.score("a", "python") == pytest.approx((6 - 1 + 3 * 0.15) / 10)
    # an unknown tag scores 0: it adds nothing to S
    assert table.score("a", "never seen") == 0.0


def test_tie_reward_moves_the_ranking() -> None:
    """A model with many ties beats one with a few wins and many losses only when ties pay."""
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("t", "steady", win=0, tie=10, loss=0))
    counts.add_outcomes(_verdict_rows("t", "swingy", win=5, tie=0, loss=5))
    def rank(s_tie: float) -> str:
        t = TagScorer(ScorerConfig(s_tie=s_tie, prior_strength=NO_PRIOR)).table(counts)
        return max(t.models, key=lambda m: t.score(m, "t"))
    assert rank(0.15) == "steady"
    assert rank(-0.2) == "swingy"


def test_scalar_quality_is_a_soft_verdict() -> None:
    counts = TagCounts()
    counts.add([["essay"]] * 2, ["a", "a"], quality=[0.9, 0.5])
    t = TagScorer(ScorerConfig(prior_strength=NO_PRIOR, weighting="uniform")).table(counts)
    # q earns s_loss + q (s_win - s_loss) = 2q - 1 with the defaults
    assert t.score("a", "essay") == pytest.approx(((2 * 0.9 - 1) + (2 * 0.5 - 1)) / 2)


def test_quality_thresholds_map_to_verdicts() -> None:
    assert [quality_verdict(q, 0.3, 0.7) for q in (0.1, 0.3, 0.69, 0.7, 1.0)] == \
        ["loss", "tie", "tie", "win", "win"]
    with pytest.raises(ValueError):
        quality_verdict(0.5, 0.8, 0.2)
    counts = TagCounts()
    n = counts.add_outcomes([{"tags": ["x"], "model": "m", "quality": q} for q in (0.9, 0.5, 0.1, 0.2)],
                            thresholds=(0.3, 0.7))
    assert n == 4
    cell = {c["tag"]: c for c in counts.to_cells()}["x"]
    assert (cell["n_win"], cell["n_tie"], cell["n_loss"], cell["q_count"]) == (1, 1, 2, 0)


def test_add_outcomes_skips_what_says_nothing_and_counts_verdict_over_quality() -> None:
    counts = TagCounts()
    n = counts.add_outcomes([
        {"tags": ["x"], "model": "m", "verdict": "unparseable"},  # unknown verdict, no quality
        {"tags": ["x"], "model": "m", "quality": None},
        {"tags": ["x"], "model": "m", "quality": float("nan")},
        {"tags": ["x"], "model": "", "verdict": "win"},  # no model
        {"tags": ["x"], "model": "m", "verdict": "win", "quality": 0.0},  # counted once, as a win
    ])
    assert n == 1
    assert counts.n_outcomes == 1
    cell = {c["tag"]: c for c in counts.to_cells()}["x"]
    assert (cell["n_win"], cell["q_count"], cell["q_sum"]) == (1, 0, 0)


def test_add_outcomes_accepts_objects_and_weights() -> None:
    class Row:
        def __init__(self, model: str, verdict: str, weight: float) -> None:
            self.tags, self.model, self.verdict, self.weight = ["law"], model, verdict, weight

    counts = TagCounts()
    counts.add_outcomes([Row("a", "win", 2.0), Row("a", "loss", 0.5)])
    cell = {(c["tag"], c["model"]): c for c in counts.to_cells()}[("law", "a")]
    assert (cell["n_win"], cell["n_loss"]) == (2.0, 0.5)


# --- shrinkage --------------------------------------------------------------------------
def test_small_counts_shrink_toward_the_models_global_rate() -> None:
    counts = TagCounts()
    # "strong" wins 80% overall across a big tag; "weak" wins 20%.
    counts.add_outcomes(_verdict_rows("general", "strong", win=160, tie=0, loss=40))
    counts.add_outcomes(_verdict_rows("general", "weak", win=40, tie=0, loss=160))
    # On a rare tag, weak got lucky twice and strong lost once.
    counts.add_outcomes(_verdict_rows("rare", "weak", win=2, tie=0, loss=0))
    counts.add_outcomes(_verdict_rows("rare", "strong", win=0, tie=0, loss=1))
    raw = TagScorer(ScorerConfig(prior_strength=NO_PRIOR, weighting="uniform")).table(counts)
    assert raw.score("weak", "rare") > raw.score("strong", "rare")  # without shrinkage the fluke wins
    shrunk = TagScorer(ScorerConfig(prior_strength=20, weighting="uniform")).table(counts)
    assert shrunk.score("strong", "rare") > shrunk.score("weak", "rare")
    # the rare cell sits near the global rate, the big cell near its empirical rate
    i = shrunk.tags.index("rare")
    j = shrunk.models.index("weak")
    assert abs(shrunk.rate[i, j] - shrunk.global_rate[j]) < abs(1.0 - shrunk.global_rate[j]) / 5
    g = shrunk.tags.index("general")
    assert shrunk.rate[g, j] == pytest.approx(-0.6, abs=0.08)
    # the uncertainty shrinks with evidence
    assert shrunk.std[i, j] > shrunk.std[g, j]


def test_global_rates_shrink_toward_the_pooled_rate() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("t", "veteran", win=500, tie=0, loss=500))
    counts.add_outcomes(_verdict_rows("t", "rookie", win=2, tie=0, loss=0))
    t = TagScorer(ScorerConfig(prior_strength=20)).table(counts)
    r = t.models.index("rookie")
    assert t.global_rate[r] < 0.2  # two wins are not a 100% record


# --- tag weights ------------------------------------------------------------------------
def test_idf_weight_favours_rare_tags() -> None:
    counts = TagCounts()
    tags = [["everywhere", "rare"] if i < 5 else ["everywhere"] for i in range(100)]
    counts.add(tags, ["m"] * 100, quality=np.full(100, 0.5))
    t = TagScorer(ScorerConfig(weighting="idf")).table(counts)
    w = dict(zip(t.tags, t.weight, strict=True))
    assert w["everywhere"] == pytest.approx(math.log(2))  # on every outcome: log(1 + N/N)
    assert w["rare"] == pytest.approx(math.log1p(100 / 5))
    u = TagScorer(ScorerConfig(weighting="uniform")).table(counts)
    assert np.all(u.weight == 1.0)
    # the count-based weights favour frequent tags instead: their rates carry more evidence
    for kind in ("log_count", "evidence"):
        wc = dict(zip(t.tags, TagScorer(ScorerConfig(weighting=kind, prior_strength=20)).table(counts).weight,
                      strict=True))
        assert wc["everywhere"] > wc["rare"] > 0
    e = dict(zip(t.tags, TagScorer(ScorerConfig(weighting="evidence", prior_strength=20)).table(counts).weight,
                 strict=True))
    assert e["rare"] == pytest.approx(5 / 25) and e["everywhere"] == pytest.approx(100 / 120)
    assert dict(zip(t.tags, TagScorer(ScorerConfig(weighting="log_count")).table(counts).weight,
                    strict=True))["rare"] == pytest.approx(math.log1p(5))
    with pytest.raises(ValueError, match="weighting"):
        TagScorer(ScorerConfig(weighting="bogus")).table(counts)  # type: ignore[arg-type]


def test_aggregate_is_the_weighted_mean_and_falls_back_to_global_rates() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("a", "m1", 9, 0, 1) + _verdict_rows("a", "m2", 1, 0, 9))
    counts.add_outcomes(_verdict_rows("b", "m1", 1, 0, 3) + _verdict_rows("b", "m2", 3, 0, 1))
    t = TagScorer(ScorerConfig(prior_strength=5)).table(counts)
    s, n_known = t.aggregate([["a", "b", "unknown"], ["b"], [], ["nope"]])
    ia, ib = t.tags.index("a"), t.tags.index("b")
    wa, wb = t.weight[ia], t.weight[ib]
    expected = (wa * t.rate[ia] + wb * t.rate[ib]) / (wa + wb)
    np.testing.assert_allclose(s[0], expected)
    np.testing.assert_allclose(s[1], t.rate[ib])
    np.testing.assert_allclose(s[2], t.global_rate)
    np.testing.assert_allclose(s[3], t.global_rate)
    assert n_known.tolist() == [2, 1, 0, 0]
    # S = sum_t score(M, t); the mean divides by sum_t w_t
    np.testing.assert_allclose(s[0] * (wa + wb), t.scores[ia] + t.scores[ib])


def test_sum_aggregate_adds_the_tags_deviations_from_the_global_rate() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("a", "m1", 9, 0, 1) + _verdict_rows("a", "m2", 1, 0, 9))
    counts.add_outcomes(_verdict_rows("b", "m1", 8, 0, 2) + _verdict_rows("b", "m2", 2, 0, 8))
    t = TagScorer(ScorerConfig(prior_strength=5, aggregate="sum", weighting="uniform")).table(counts)
    s, n_known = t.aggregate([["a", "b"], ["a"], []])
    ia, ib = t.tags.index("a"), t.tags.index("b")
    g = t.global_rate
    np.testing.assert_allclose(s[0], g + (t.rate[ia] - g) + (t.rate[ib] - g))
    np.testing.assert_allclose(s[2], g)
    # Two tags that both favour m1 push it further ahead than either alone (a mean would not).
    assert (s[0, 0] - s[0, 1]) > (s[1, 0] - s[1, 1]) > 0 and n_known.tolist() == [2, 1, 0]
    sampled, _ = t.aggregate([["a", "b"]], sample=np.array([True]), rng=np.random.default_rng(0))
    assert not np.allclose(sampled, s[:1])


def test_thompson_sampling_only_perturbs_sampled_rows() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("a", "m1", 3, 0, 1) + _verdict_rows("a", "m2", 1, 0, 3))
    t = TagScorer().table(counts)
    base, _ = t.aggregate([["a"], ["a"]])
    sampled, _ = t.aggregate([["a"], ["a"]], sample=np.array([True, False]), rng=np.random.default_rng(0))
    assert not np.allclose(sampled[0], base[0])
    np.testing.assert_allclose(sampled[1], base[1])


# --- new models and round trips -----------------------------------------------------------
def test_a_new_model_gains_a_row_from_outcome_rows_alone() -> None:
    counts = TagCounts()
    counts.add_outcomes(_verdict_rows("python", "old", 5, 0, 5))
    before = TagScorer().table(counts, version=1)
    assert "newbie" not in before.models
    # the store's refresh: counts from the current cells, plus new outcome rows, no retraining
    counts2 = TagCounts.from_cells(before.to_json()["cells"])
    counts2.add_outcomes(_verdict_rows("python", "newbie", 30, 0, 0))
    after = TagScorer().table(counts2, version=2)
    assert after.version == 2
    assert "newbie" in after.models
    assert after.score("newbie", "python") > after.score("old", "python")
    assert after.global_n[after.models.index("newbie")] == 30


def test_cells_and_json_round_trip() -> None:
    counts = TagCounts()
    counts.add([["x", "y"], ["y"]], ["a", "b"], verdicts=["win", "tie"], quality=[0.25, None])
    cells = counts.to_cells()
    assert {c["tag"] for c in cells} == {GLOBAL_TAG, "x", "y"}
    back = TagCounts.from_cells(cells)
    assert sorted(map(str, back.to_cells())) == sorted(map(str, cells))
    table = TagScorer(ScorerConfig(prior_strength=3.0)).table(counts, version=7)
    again = ScoreTable.from_json(table.to_json())
    assert again.version == 7 and again.config.prior_strength == 3.0
    np.testing.assert_allclose(again.scores, table.scores)
    merged = counts.merge(back)
    assert merged.n_outcomes == 2 * counts.n_outcomes
    with pytest.raises(ValueError):
        TagCounts(tags=["x"])


def test_fit_from_a_dense_matrix_skips_unknown_cells() -> None:
    q = np.array([[1.0, np.nan], [0.0, 1.0]])
    t = TagScorer(ScorerConfig(prior_strength=NO_PRIOR)).fit([["a"], ["a"]], ["m1", "m2"], q)
    assert t.models == ["m1", "m2"]
    assert t.n[t.tags.index("a")].tolist() == [2, 1]


def test_pairwise_verdicts_split_each_prompt_into_one_outcome() -> None:
    q = np.array([[0.9, 0.5, np.nan], [0.5, 0.5, 0.1]])
    v = pairwise_verdicts(q, margin=0.0)
    np.testing.assert_allclose(v[0, 0], [1, 0, 0])
    np.testing.assert_allclose(v[0, 2], [0, 0, 0])  # unknown: met nobody
    np.testing.assert_allclose(v[1, 0], [0.5, 0.5, 0])
    np.testing.assert_allclose(v.sum(axis=2)[1], [1, 1, 1])


# --- the cost rule ------------------------------------------------------------------------
def test_cheapest_within_tolerance() -> None:
    scores = np.array([[0.9, 0.8, 0.2], [0.9, 0.8, 0.2], [0.5, 0.5, 0.5], [0.1, 0.9, 0.5]])
    costs = np.array([[10.0, 1.0, 0.1], [10.0, 1.0, 0.1], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
    elig = np.ones_like(scores, dtype=bool)
    elig[3, 1] = False
    pick = cheapest_within(scores, costs, elig, np.array([0.0, 0.15, 0.0, 0.0]))
    assert pick.tolist() == [0, 1, 0, 2]  # best; cheaper within 0.15; equal cost -> ... ; ineligible skipped
    # with equal costs, the higher score wins
    assert cheapest_within(np.array([[0.1, 0.7, 0.3]]), np.ones((1, 3)), np.ones((1, 3), bool), 1.0)[0] == 1
    assert cheapest_within(scores[:1], costs[:1], np.zeros((1, 3), bool), 0.0)[0] == -1


def test_theta_grid_spans_all_cheapest_to_best() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 3))
    costs = np.tile([3.0, 2.0, 1.0], (200, 1))
    grid = theta_grid(scores, spread=1.0, n=21)
    assert len(grid) >= 21 and grid == sorted(grid, reverse=True) and grid[-1] == 0.0
    elig = np.ones_like(scores, dtype=bool)
    assert (cheapest_within(scores, costs, elig, grid[0]) == 2).all()  # top: every row to the cheapest
    np.testing.assert_array_equal(cheapest_within(scores, costs, elig, 0.0), scores.argmax(axis=1))
    # coarse scores (few distinct gaps) still give n distinct values
    coarse = np.tile([[1.0, 0.0]], (50, 1))
    assert len(set(theta_grid(coarse, 1.0, 21))) == 21
