"""GLIDER's global router: a capability key per model, a one-line query per prompt.

GLIDER (Li et al., "Glider: Global and Local Instruction-Driven Expert Router", 2024)
routes with two signals; this is its **global** one. Each model has a **key**, a short
capability description, and each prompt a **query**, the embedding of a one-line task
instruction. The global score of a model is ``alpha * cos(query, key)`` (MiniLM).

Keys (``keys=`` / the ``glider_keys`` setting):
    - ``catalog``: the catalog's ``description`` of the model;
    - ``train``: written from the train prompts on which the model did best: the most
      characteristic keyphrases of its winning prompts against all train prompts
      (weighted log-odds with a Jeffreys prior, Monroe et al. 2008), e.g.
      ``"best on: python function, sql query, regex"``;
    - ``auto`` (default): the catalog's text when present, else the train key.
  :meth:`GliderPolicy.keys_table` shows them; ``save`` stores the train keys
  (``switchyard train glider DATASET_DIR``; ``switchyard glider-keys`` prints them).

Query: the prompt's own leading text (first line, at most ``lead_words`` words), or,
with ``rewrite_model`` (a catalog model id), that model's one-line rewrite of the
request through its provider (any provider kind; a failed call keeps the leading text).

Composition (``get_policy("glider+<base>")``):
    - a :class:`~switchyard.routing.base.ScoringPolicy` base (``tryage``, ``mf``):
      ``alpha * cos`` (centred over the keyed models) is added to its per-model scores
      and the base decides with its own knob and cost rule;
    - ``tagrouter``: the same, added to its tag scores S before its
      "cheapest within theta" rule (through the policy's batch internals, until it
      exposes ``score_batch``/``decide_from_scores``);
    - any other base: its decision's ``ranked`` scores plus ``alpha * cos``; GLIDER may
      replace the base's choice by a model it ranks higher that is no more expensive,
      so the base's cost curve is kept.
The composite's knob is the base's. ``glider`` alone chooses
``argmax alpha * cos - lambda * penalty`` (Tryage's rule; knob lambda).
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import (
    RouteDecision,
    RouteRequest,
    RoutingContext,
    RoutingPolicy,
    ScoringPolicy,
    TrainingSet,
    fallback_decision,
    policies,
)
from switchyard.routing.quality import (
    ATTRIBUTES,
    LazyArtifact,
    PenalisedQualityPolicy,
    PredictionMemo,
    embed_texts,
    load_artifact,
    save_artifact,
    unit_rows,
)

log = logging.getLogger(__name__)

KEY_MODES = ("auto", "catalog", "train")
ALPHA_GRID = (0.0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)  # what benchmarks/eval_policies.py cross-validates
REWRITE_PROMPT = ("Rewrite the user's request below as one short imperative task instruction (at most 20 "
                  "words) naming the task and its subject. Answer with the instruction only.\n\n"
                  "Request:\n{prompt}")
_WORD = re.compile(r"[a-z][a-z0-9+#'-]*")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did",
    "do", "does", "doing", "down", "during", "each", "few", "for", "from", "further", "had", "has", "have",
    "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into",
    "is", "it", "its", "itself", "just", "let", "me", "more", "most", "my", "myself", "no", "nor", "not", "now",
    "of", "off", "on", "once", "only", "or", "other", "our", "ours", "ourselves", "out", "over", "own", "same",
    "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then",
    "there", "these", "they", "this", "those", "through", "to", "too", "under", "until", "up", "very", "was", "we",
    "were", "what", "when", "where", "which", "while", "who", "whom", "why", "will", "with", "would", "you",
    "your", "yours", "yourself", "yourselves", "one", "two", "three", "many", "much", "get", "got", "make", "made",
    "like", "use", "used", "using", "may", "might", "must", "shall", "need", "want", "give", "given", "following",
    "answer", "question", "please", "write", "tell", "know", "think", "whose", "per", "via", "yes", "it's", "i'm",
    "don't", "can't",
})


# --- queries ----------------------------------------------------------------------------------------
def leading_text(prompt: str, max_words: int = 32) -> str:
    """The prompt's first non-empty line, cut to ``max_words`` words (its task instruction)."""
    line = next((ln.strip() for ln in prompt.splitlines() if ln.strip()), "")
    words = line.split()
    return " ".join(words[:max_words]) if words else ""


# --- keys from train -----------------------------------------------------------------------------------
def _terms(text: str) -> set[str]:
    words = _WORD.findall(text[:2000].lower())
    ok = [len(w) > 2 and w not in STOPWORDS for w in words]
    terms = {w for w, good in zip(words, ok, strict=True) if good}
    terms |= {f"{a} {b}" for a, b, ga, gb in zip(words, words[1:], ok, ok[1:], strict=False) if ga and gb}
    if _CJK.search(text):
        terms.add("chinese text")
    return terms


def winners(quality: np.ndarray, margin: float = 1e-9) -> np.ndarray:
    """[N, M] bool: model m is among the best known on prompt n, and some known model did worse."""
    q = np.where(np.isfinite(quality), quality, np.nan)
    with np.errstate(invalid="ignore"):
        best = np.nanmax(np.where(np.isfinite(q), q, -np.inf), axis=1, keepdims=True)
        worst = np.nanmin(np.where(np.isfinite(q), q, np.inf), axis=1, keepdims=True)
    return np.isfinite(q) & (q >= best - margin) & (best > worst + margin)


def keyphrases(term_sets: Sequence[set[str]], mask: np.ndarray, k: int = 10, min_df: int = 3) -> list[str]:
    """The ``k`` terms most characteristic of the prompts in ``mask`` against the others.

    Weighted log-odds ratio (Jeffreys prior 0.5) of a term's document frequency inside vs
    outside ``mask``, divided by its standard error (Monroe, Colaresi & Quinn 2008). A term
    must occur in at least ``min_df`` masked prompts; overlapping phrases are kept once.
    """
    inside = Counter[str]()
    outside = Counter[str]()
    for terms, m in zip(term_sets, mask, strict=True):
        (inside if m else outside).update(terms)
    n1, n2 = int(mask.sum()), int((~mask).sum())
    if n1 == 0:
        return []
    a0 = 0.5
    scored = []
    for t, a in inside.items():
        if a < min_df:
            continue
        c = outside.get(t, 0)
        lo = math.log((a + a0) / (n1 - a + a0)) - math.log((c + a0) / (n2 - c + a0))
        se = math.sqrt(1 / (a + a0) + 1 / (n1 - a + a0) + 1 / (c + a0) + 1 / (n2 - c + a0))
        scored.append((lo / se, t))
    scored.sort(key=lambda x: (-x[0], x[1]))
    out: list[str] = []
    for z, t in scored:
        if z <= 0 or len(out) >= k:
            break
        if any(t in o or o in t for o in out):
            continue
        out.append(t)
    return out


def train_keys(train: TrainingSet, k: int = 10, min_df: int = 3) -> dict[str, str]:
    """One key per model from the train prompts it did best on (models with no such prompt get none)."""
    win = winners(np.asarray(train.quality, dtype=np.float64))
    term_sets = [_terms(p) for p in train.prompts]
    keys = {}
    for j, m in enumerate(train.models):
        phrases = keyphrases(term_sets, win[:, j], k=k, min_df=min_df)
        if phrases:
            keys[m] = "best on: " + ", ".join(phrases)
    return keys


# --- the policy ------------------------------------------------------------------------------------------
@policies.register("glider")
class GliderPolicy(LazyArtifact, PenalisedQualityPolicy):
    knob_default = 0.1

    def __init__(self, base: RoutingPolicy | None = None, *, alpha: float | None = None, keys: str | None = None,
                 lead_words: int = 32, rewrite_model: str | None = None, artifact: Path | None = None,
                 flags: dict[str, float] | None = None) -> None:
        from switchyard.config import get_settings

        s = get_settings()
        self.base = base
        self.alpha = float(s.glider_alpha if alpha is None else alpha)
        self.key_mode = keys or s.glider_keys
        if self.key_mode not in KEY_MODES:
            raise ValueError(f"glider keys must be one of {', '.join(KEY_MODES)}, not {self.key_mode!r}")
        self.lead_words, self.rewrite_model = lead_words, rewrite_model
        self.artifact = artifact
        self.name = "glider" if base is None else f"glider+{base.name}"
        self.knob_name = base.knob_name if base is not None else "lambda"
        self.knob_default = base.knob_default if base is not None else 0.1
        self.default_flags = {k: float(v) for k, v in (flags or dict(s.tryage_flags)).items() if k in ATTRIBUTES}
        self.train_key_text: dict[str, str] = {}
        self._key_emb: dict[str, np.ndarray] = {}
        self._queries = PredictionMemo()
        self._catalog: Catalog | None = None  # the last catalog seen (for predict without one)

    # --- LazyArtifact: the glider artifact holds train keys; the catalog needs none ------------
    def _fitted(self) -> bool:
        return bool(self.train_key_text)

    def ready(self) -> bool:
        LazyArtifact.ready(self)  # loads train keys once if an artifact exists
        return True  # catalog keys need no training; a model without any key scores 0

    def knob_grid(self, n: int = 21) -> list[float]:
        if self.base is not None:
            return self.base.knob_grid(n)
        return super().knob_grid(n)

    @staticmethod
    def alpha_grid() -> list[float]:
        """alpha values worth sweeping for a composite (alpha = 0 is the base itself)."""
        return list(ALPHA_GRID)

    # --- training -----------------------------------------------------------------------------------
    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        fit = getattr(self.base, "fit", None)
        if callable(fit):
            fit(train, catalog, context)
        self.train_key_text = train_keys(train)
        self._tried_load = True
        if self.base is None:
            self._catalog = catalog
            self.set_grid_from_train(train, catalog, context)

    def save(self, path: Path) -> None:
        save_artifact(path, {"kind": "glider", "version": 1, "keys": dict(self.train_key_text)})

    def load(self, path: Path) -> None:
        self.train_key_text = {str(k): str(v) for k, v in load_artifact(path, "glider")["keys"].items()}

    # --- keys ------------------------------------------------------------------------------------------
    def keys_table(self, catalog: Catalog | None = None) -> dict[str, dict[str, str]]:
        """The key used for each model: {model: {"key": text, "source": "catalog" | "train"}}."""
        self.ready()
        out: dict[str, dict[str, str]] = {}
        cat = catalog or self._catalog
        models = cat.ids() if cat is not None else sorted(self.train_key_text)
        for m in models:
            desc = cat.get(m).description.strip() if cat is not None and m in cat else ""
            train = self.train_key_text.get(m, "")
            if self.key_mode in ("auto", "catalog") and desc:
                out[m] = {"key": desc, "source": "catalog"}
            elif self.key_mode in ("auto", "train") and train:
                out[m] = {"key": train, "source": "train"}
        return out

    def _key_matrix(self, catalog: Catalog, context: RoutingContext) -> tuple[list[str], np.ndarray]:
        """(keyed models, unit key embeddings [K, 384])."""
        table = self.keys_table(catalog)
        models = list(table)
        texts = [table[m]["key"] for m in models]
        todo = [t for t in dict.fromkeys(texts) if t not in self._key_emb]
        if todo:
            for t, v in zip(todo, embed_texts(todo, context), strict=True):
                self._key_emb[t] = v
        if not models:
            return [], np.zeros((0, 384), dtype=np.float32)
        return models, unit_rows(np.stack([self._key_emb[t] for t in texts]).astype(np.float32))

    # --- queries ------------------------------------------------------------------------------------------
    def queries(self, requests: Sequence[RouteRequest], context: RoutingContext,
                catalog: Catalog | None = None) -> list[str]:
        leads = [leading_text(r.prompt, self.lead_words) or r.prompt[:200] for r in requests]
        if self.rewrite_model is None or catalog is None or self.rewrite_model not in catalog:
            return leads
        return self._rewrite(requests, leads, catalog)

    def _rewrite(self, requests: Sequence[RouteRequest], leads: list[str], catalog: Catalog) -> list[str]:
        from switchyard.providers.base import ChatCall, build_provider

        assert self.rewrite_model is not None
        card = catalog.get(self.rewrite_model)
        provider = build_provider(catalog.provider_of(self.rewrite_model))

        def one(i: int) -> str:
            try:
                res = provider.complete(ChatCall(model=card.upstream_name, max_tokens=48, params={"temperature": 0},
                                                 messages=[{"role": "user", "content": REWRITE_PROMPT.format(
                                                     prompt=requests[i].prompt[:4000])}]))
                text = leading_text(res.text, self.lead_words)
                return text or leads[i]
            except Exception as e:
                log.warning("glider: rewrite by %s failed (%s); using the leading text", self.rewrite_model, e)
                return leads[i]

        with ThreadPoolExecutor(max_workers=8) as pool:
            return list(pool.map(one, range(len(requests))))

    def _query_emb(self, requests: Sequence[RouteRequest], context: RoutingContext,
                   catalog: Catalog | None) -> np.ndarray:
        def compute(rs: Sequence[RouteRequest]) -> np.ndarray:
            texts = self.queries(rs, context, catalog)
            out = np.zeros((len(rs), 384), dtype=np.float32)
            same = [i for i, (r, t) in enumerate(zip(rs, texts, strict=True)) if t == r.prompt]
            other = [i for i in range(len(rs)) if i not in set(same)]
            if same:  # the whole prompt is its own instruction: reuse the request's embedding
                out[same] = context.embed([rs[i] for i in same])
            if other:
                out[other] = embed_texts([texts[i] for i in other], context)
            return unit_rows(out)

        return self._queries.get_or_compute(requests, 384, compute).astype(np.float32)

    def similarity(self, requests: Sequence[RouteRequest], catalog: Catalog,
                   context: RoutingContext) -> np.ndarray:
        """cos(query, key) over catalog.ids(): [B, M]; NaN for a model without a key."""
        ids = catalog.ids()
        out = np.full((len(requests), len(ids)), np.nan)
        models, keys = self._key_matrix(catalog, context)
        if not models or not requests:
            return out
        cos = self._query_emb(requests, context, catalog) @ keys.T  # [B, K]
        col = {m: j for j, m in enumerate(ids)}
        for k, m in enumerate(models):
            out[:, col[m]] = cos[:, k]
        return out

    def offsets(self, requests: Sequence[RouteRequest], catalog: Catalog, context: RoutingContext) -> np.ndarray:
        """alpha * (cos - its mean over the keyed models), 0 for unkeyed models. Shape: [B, M]."""
        cos = self.similarity(requests, catalog, context)
        if not np.isfinite(cos).any():
            return np.zeros_like(cos)
        mean = np.nanmean(np.where(np.isfinite(cos), cos, np.nan), axis=1, keepdims=True)
        return np.where(np.isfinite(cos), self.alpha * (cos - mean), 0.0)

    # --- alone: the penalised argmax of alpha * cos ----------------------------------------------------------
    def predict(self, requests: Sequence[RouteRequest], context: RoutingContext) -> tuple[list[str], np.ndarray]:
        if self._catalog is None:
            return [], np.zeros((len(requests), 0))
        cat = self._catalog
        cos = self.similarity(requests, cat, context)
        keyed = [j for j in range(cos.shape[1]) if np.isfinite(cos[:, j]).any()]
        return [cat.ids()[j] for j in keyed], self.alpha * cos[:, keyed]

    def score_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                    context: RoutingContext) -> np.ndarray:
        self._catalog = catalog
        if isinstance(self.base, ScoringPolicy):
            return self.base.score_batch(requests, catalog, context) + self.offsets(requests, catalog, context)
        return super().score_batch(requests, catalog, context)

    def decide_from_scores(self, requests: Sequence[RouteRequest], scores: np.ndarray, catalog: Catalog,
                           context: RoutingContext) -> list[RouteDecision]:
        if isinstance(self.base, ScoringPolicy):
            return self._relabel(self.base.decide_from_scores(requests, scores, catalog, context), requests,
                                 catalog, context)
        return super().decide_from_scores(requests, scores, catalog, context)

    # --- deciding ------------------------------------------------------------------------------------------
    def decide_batch(self, requests: Sequence[RouteRequest], catalog: Catalog,
                     context: RoutingContext) -> list[RouteDecision]:
        self._catalog = catalog
        self.ready()
        if not requests:
            return []
        if self.base is None:
            if not self.keys_table(catalog):
                return [fallback_decision(r, catalog, self.name, "glider has no key for any catalog model "
                                          "(no descriptions; run 'switchyard train glider DATASET_DIR')")
                        for r in requests]
            return super().decide_batch(requests, catalog, context)
        if isinstance(self.base, ScoringPolicy):
            return self.decide_from_scores(requests, self.score_batch(requests, catalog, context), catalog, context)
        offsets = self.offsets(requests, catalog, context)
        decided = self._tagrouter_decide(requests, catalog, context, offsets)
        if decided is not None:
            return self._relabel(decided, requests, catalog, context, offsets)
        return self._relabel(self._ranked_decide(self.base.decide_batch(requests, catalog, context), requests,
                                                 catalog, offsets), requests, catalog, context, offsets)

    def _tagrouter_decide(self, requests: Sequence[RouteRequest], catalog: Catalog, context: RoutingContext,
                          offsets: np.ndarray) -> list[RouteDecision] | None:
        """TagRouter's own rule on S + offsets (None if the base is not a TagRouter)."""
        from switchyard.routing.tagrouter import TagRouterPolicy

        if not isinstance(self.base, TagRouterPolicy):
            return None
        return self.base.decide_shifted(requests, catalog, context, offsets)

    def _ranked_decide(self, decisions: list[RouteDecision], requests: Sequence[RouteRequest], catalog: Catalog,
                       offsets: np.ndarray) -> list[RouteDecision]:
        """Any base: ranked scores + offsets; switch only to a model no more expensive than the base's pick."""
        col = {m: j for j, m in enumerate(catalog.ids())}
        for b, (d, r) in enumerate(zip(decisions, requests, strict=True)):
            if d.fallback or len(d.ranked) < 2:
                continue
            shifted = {m: float(s) + float(offsets[b, col[m]]) for m, s in d.ranked if m in col}
            cap = catalog.get(d.model).predicted_cost(r.input_tokens) * (1 + 1e-9) + 1e-15
            cands = [m for m in shifted if catalog.get(m).predicted_cost(r.input_tokens) <= cap]
            best = max(cands, key=lambda m: (shifted[m], m == d.model)) if cands else d.model
            d.ranked = sorted(shifted.items(), key=lambda x: -x[1])
            if best != d.model:
                d.reason = f"{best}: GLIDER similarity ranks it above {d.model} at no higher cost ({d.reason})"
                d.model = best
                d.predicted_cost_usd = catalog.get(best).predicted_cost(r.input_tokens)
        return decisions

    def _relabel(self, decisions: list[RouteDecision], requests: Sequence[RouteRequest], catalog: Catalog,
                 context: RoutingContext, offsets: np.ndarray | None = None) -> list[RouteDecision]:
        if offsets is None:
            offsets = self.offsets(requests, catalog, context)
        ids = catalog.ids()
        for b, d in enumerate(decisions):
            d.policy = self.name
            d.details["glider"] = {"alpha": self.alpha, "base": self.base.name if self.base is not None else None,
                                   "offset": {m: round(float(offsets[b, j]), 5) for j, m in enumerate(ids)
                                              if offsets[b, j] != 0.0}}
        return decisions
