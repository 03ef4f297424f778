"""The default CPU tagger: task/domain labels plus KeyBERT-style keyphrases, no LLM.

Design
------
TagRouter routes on *open* tags, which the paper gets from a 7B TagGenerator. On a
CPU we want tags that still read like a person wrote them, at dataset scale
(tens of thousands of prompts), from the MiniLM we already load for embeddings.
Each prompt gets two kinds of tags:

1. **Labels** from a curated vocabulary (``switchyard/data/tag_labels.yaml``):
   ~100 task ("summarization", "email writing"), format ("multiple choice") and
   domain ("python", "law", "history") labels, each described by a few
   request-shaped sentences. A prompt's score for a label is the best MiniLM
   cosine against its sentences; we keep the best task label and up to two
   domain labels above a threshold. Labels carry the routing signal (which kind
   of work, which field) and, being a closed set, they align across prompts for
   free. Some cues MiniLM cannot see from a pooled embedding (code syntax, A-D
   answer options, CJK script), so a label may also list regex ``patterns`` that
   assign it outright. Labels whose cosine match proved noisy on real prompts
   (programming languages: "java" for a jar, "javascript" for a beaker; "recipe"
   for any food; "role play" for any persona-shaped request) are ``cue_only``:
   only their patterns assign them, and the scored "programming" and "cooking"
   labels carry the broad topic. MiniLM is English-only: for mostly-Chinese prompts the
   cosine scores are noise, so those prompts get labels from patterns and the
   labels' Chinese keywords (``zh``) only.
2. **Keyphrases** (KeyBERT, Grootendorst 2020): candidate 1-3-word runs of
   non-stopwords from the prompt, ranked by MiniLM cosine to the whole prompt with
   a Maximal Marginal Relevance step so the 1-3 kept phrases are not paraphrases
   of each other. Formulas (``$...$``, LaTeX commands, ``[asy]`` drawings) and
   number words never make candidates. They add the open, specific part ("kickball", "crossword
   puzzle") that a closed label set lacks; the vocabulary later merges and
   aligns them.

Cost: one ``encode`` for all prompts of a batch and one for all candidate phrases
(capped per prompt, because phrase encoding dominates the run time); label
sentences are embedded once per process. Everything else is numpy and regexes.
Output: 3-6 lowercase tags per prompt (fewer only when a prompt offers nothing),
labels first.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from switchyard.embeddings import Embedder, get_embedder, prompt_texts
from switchyard.errors import ConfigError
from switchyard.tagging.base import taggers
from switchyard.tagging.parse import is_clean_tag, normalize_tag

_KINDS = ("task", "format", "domain")
# Keyphrase candidates come from the head of a prompt, where its topic is stated.
_CANDIDATE_CHARS = 1500
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#'-]*")
# Anything that is not a word character, space, apostrophe, + or # ends a phrase.
_BOUNDARY = re.compile(r"[^\w\s'+#-]+|\n|_|(?<=\s)-|-(?=\s)")
# Math and drawings: "$\frac{1}{2}$", "\overline{7}", "[asy]draw(...)[/asy]" are not keyphrases.
# Inline math hugs its dollars ("$x+1$"); prices do not ("$5 and $3"), so they survive.
_MATH = re.compile(r"\[asy\].*?(?:\[/asy\]|$)|\$\$.*?\$\$|\$(?=\S)[^$\n]{0,300}?(?<=\S)\$(?!\d)"
                   r"|\\\(.*?\\\)|\\[A-Za-z]+", re.DOTALL)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Function words, frequent verbs and filler that never make a topical keyphrase.
STOPWORDS = _wordset("""
a about above after again against all almost also although always am among an and another any anybody
anyone anything anyway are aren't around as ask asked asking at away back be became because become been
before being below best better between both but by can can't cannot certain choose come consider could
couldn't correct did didn't different do does doesn't doing don't done down during each either else
enough etc even ever every everyone everything example explain explanation fact false few find first
following for found from further get gets getting give given gives go goes going good got great had
hasn't have haven't having he he'd he'll he's help her here hers herself hey hi him himself his how
however i i'd i'll i'm i've if in include including instead into is isn't it it's its itself just keep
kind know known last least less let let's like likely list little look lot lots made make makes making
many may maybe me mean means might mine more most much must my myself need needs never new next no none
nor not nothing now of off often ok okay on once one ones only onto or other others otherwise our ours
ourselves out over own part particular people per perhaps please possible pretty probably provide put
question questions quite rather really regarding right said same say says see seem seems several shall
she she'd she'll she's should shouldn't show similar since so some someone something sometimes soon
specific statement statements still such suggest sure take tell than thank thanks that that's the
their theirs them themselves then there there's these they they'd they'll they're they've thing things
think this those though through thus to too true try trying type under until up upon us use used using
usually various very via want wants was wasn't way ways we we'd we'll we're we've well were weren't what
what's whatever when where whether which while who who's whom whose why will with within without won't
would wouldn't write yes yet you you'd you'll you're you've your yours yourself yourselves answer answers
option options best following describe describes tell step steps sentence passage text below above
return returns def const function given assert print true false none null self lst str int
actually especially exactly finally generally mostly particularly quickly simply successfully
buy buys bought cost costs earn earns earned gave get got has had pay pays paid sell sells sold spend
spends spent take takes took weigh weighs went produce produces produced wanted decided started
two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty hundred
thousand million billion half twice thrice third fourth fifth sixth tenth dozen
""")
# Adverbs in -ly are filler in keyphrases; these common -ly nouns and names are not.
_LY_NOUNS = _wordset("family assembly butterfly monopoly anomaly supply italy july reply ally jelly belly bully "
                     "lily rally emily kelly molly holly sally beverly kimberly")


@dataclass(frozen=True)
class Label:
    name: str
    kind: str
    patterns: tuple[re.Pattern[str], ...]
    zh: tuple[str, ...]
    cue_only: bool = False  # assigned by patterns / zh keywords only, never by cosine


class LabelSet:
    """The curated labels and their sentence embeddings (computed once per process)."""

    def __init__(self, labels: list[Label], descriptions: list[tuple[int, str]], embedder: Embedder) -> None:
        self.labels = labels
        self.kind = np.array([_KINDS.index(lab.kind) for lab in labels])  # [L]
        self.scored = np.array([not lab.cue_only for lab in labels], dtype=bool)  # [L] cosine may pick it
        owners = np.array([owner for owner, _ in descriptions])  # [D], sorted by owner
        self._starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])  # [L] first row per label
        self._vecs = embedder.encode([text for _, text in descriptions])  # [D, 384]

    def scores(self, prompt_vecs: np.ndarray) -> np.ndarray:
        """Best cosine of each prompt against each label's sentences. [B, 384] -> [B, L]."""
        sims = prompt_vecs @ self._vecs.T  # [B, D]
        return np.maximum.reduceat(sims, self._starts, axis=1)  # [B, L]

    def cue_hits(self, text: str, cjk: bool) -> list[int]:
        """Labels assigned by a surface cue: a regex pattern, or a Chinese keyword."""
        hits = []
        for i, lab in enumerate(self.labels):
            if any(p.search(text) for p in lab.patterns) or (cjk and any(k in text for k in lab.zh)):
                hits.append(i)
        return hits


def default_labels_path() -> Path:
    return Path(str(resources.files("switchyard") / "data" / "tag_labels.yaml"))


def load_labels(path: Path) -> tuple[list[Label], list[tuple[int, str]]]:
    """Parse the label YAML into labels and (label index, sentence) pairs."""
    try:
        raw: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
        labels: list[Label] = []
        descriptions: list[tuple[int, str]] = []
        for entry in raw["labels"]:
            name = normalize_tag(entry["name"])
            if entry["kind"] not in _KINDS or not is_clean_tag(name):
                raise ValueError(f"bad label {entry!r}")
            patterns = tuple(re.compile(p) for p in entry.get("patterns", []))
            labels.append(Label(name, entry["kind"], patterns, tuple(entry.get("zh", [])),
                                bool(entry.get("cue_only", False))))
            lines = [str(d) for d in entry.get("describe", [])] or [name]
            descriptions += [(len(labels) - 1, f"{name}: {d}") for d in lines]
    except (OSError, KeyError, TypeError, ValueError, re.error, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot load tag labels from {path}: {exc}") from exc
    return labels, descriptions


_LABEL_SETS: dict[tuple[str, int], LabelSet] = {}
_LABEL_LOCK = threading.Lock()


def get_label_set(path: Path, embedder: Embedder) -> LabelSet:
    key = (str(path), id(embedder))
    with _LABEL_LOCK:
        if key not in _LABEL_SETS:
            _LABEL_SETS[key] = LabelSet(*load_labels(path), embedder)
        return _LABEL_SETS[key]


def is_mostly_cjk(text: str) -> bool:
    """True when CJK characters outnumber Latin letters (MiniLM cannot read the prompt)."""
    cjk = len(_CJK.findall(text))
    latin = sum(ch.isascii() and ch.isalpha() for ch in text)
    return cjk > 0 and cjk >= latin


def extract_candidates(text: str, max_candidates: int) -> list[str]:
    """Candidate keyphrases: 1-3-word runs of non-stopwords, most frequent first, then earliest."""
    counts: dict[str, int] = {}
    text = _MATH.sub(" , ", text[:_CANDIDATE_CHARS].replace("’", "'"))
    for chunk in _BOUNDARY.split(text):
        run: list[str] = []
        for word in [*_words(chunk), ""]:  # "" flushes the last run
            if word and word not in STOPWORDS:  # "" (number, adverb) ends a run too
                run.append(word)
                continue
            for phrase in _ngrams(run):
                counts[phrase] = counts.get(phrase, 0) + 1
            run = []
    # dicts keep insertion order, so a stable sort by count breaks ties by position.
    ranked = sorted(counts, key=lambda p: -counts[p])
    return ranked[:max_candidates]


def _words(chunk: str) -> list[str]:
    out = []
    for tok in _TOKEN.findall(chunk.lower()):
        tok = tok.removesuffix("'s").strip("'-")
        # A bare number ends a run, as a stopword does ("3 apples" -> "apples").
        adverb = tok.endswith("ly") and len(tok) > 4 and tok not in _LY_NOUNS
        out.append("" if adverb or not any(ch.isalpha() for ch in tok) else tok)
    return out


def _ngrams(run: list[str]) -> list[str]:
    phrases = []
    for n in (1, 2, 3):
        for i in range(len(run) - n + 1):
            phrase = " ".join(run[i:i + n])
            if (n > 1 or len(phrase) >= 3) and is_clean_tag(phrase):
                phrases.append(phrase)
    return phrases


def mmr(doc_sims: np.ndarray, cand_vecs: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal Marginal Relevance. doc_sims [n], cand_vecs [n, 384] -> up to k indices."""
    chosen: list[int] = []
    pair = cand_vecs @ cand_vecs.T  # [n, n]
    while len(chosen) < min(k, len(doc_sims)):
        redundancy = pair[:, chosen].max(axis=1) if chosen else np.zeros_like(doc_sims)  # [n]
        score = (1 - diversity) * doc_sims - diversity * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


class OfflineTagger:
    """Labels + keyphrases on CPU. See the module docstring for the design."""

    name = "offline"

    def __init__(self, *, labels_path: Path | str | None = None, embedder: Embedder | None = None,
                 max_tags: int = 6, min_tags: int = 3, max_phrases: int = 3, max_candidates: int = 12,
                 task_threshold: float = 0.35, domain_threshold: float = 0.26, domain_margin: float = 0.04,
                 phrase_threshold: float = 0.3, diversity: float = 0.4,
                 pad_threshold: float = 0.2, shorter_margin: float = 0.03) -> None:
        self.embedder = embedder or get_embedder()
        self.labels = get_label_set(Path(labels_path) if labels_path else default_labels_path(), self.embedder)
        self.max_tags, self.min_tags, self.max_phrases = max_tags, min_tags, max_phrases
        self.max_candidates = max_candidates
        self.task_threshold, self.domain_threshold = task_threshold, domain_threshold
        self.domain_margin, self.phrase_threshold, self.diversity = domain_margin, phrase_threshold, diversity
        self.pad_threshold, self.shorter_margin = pad_threshold, shorter_margin

    def tag_batch(self, prompts: Sequence[str]) -> list[list[str]]:
        texts = [p if isinstance(p, str) else "" for p in prompts]
        if not texts:
            return []
        prompt_vecs = self.embedder.encode(prompt_texts(texts))  # [B, 384]
        label_scores = self.labels.scores(prompt_vecs)  # [B, L]
        cands = [extract_candidates(t, self.max_candidates) for t in texts]
        phrase_index = {p: i for i, p in enumerate(dict.fromkeys(p for c in cands for p in c))}
        phrase_vecs = self.embedder.encode(list(phrase_index))  # [N, 384], N unique phrases in the batch
        out = []
        for text, vec, scores, cand in zip(texts, prompt_vecs, label_scores, cands, strict=True):
            labels = self._labels_for(text, scores)
            rows = phrase_vecs[[phrase_index[p] for p in cand]] if cand else phrase_vecs[:0]  # [n, 384]
            out.append(self._combine(labels, self._phrases(vec, cand, rows, labels), text, scores))
        return out

    def _labels_for(self, text: str, scores: np.ndarray) -> list[str]:
        """Cue-assigned labels, then the best task and up to two domains by cosine."""
        cjk = is_mostly_cjk(text)
        picked = self.labels.cue_hits(text, cjk)
        if not cjk:  # MiniLM scores of Chinese text are noise
            picked += self._scored(scores, kind=0, threshold=self.task_threshold, k=1)
            picked += self._scored(scores, kind=2, threshold=self.domain_threshold, k=2)
        kinds = self.labels.kind
        ordered = sorted(dict.fromkeys(picked), key=lambda i: (kinds[i], -scores[i]))  # task, format, domain
        return [self.labels.labels[i].name for i in ordered][: self.max_tags - 1]

    def _scored(self, scores: np.ndarray, *, kind: int, threshold: float, k: int) -> list[int]:
        idx = np.flatnonzero((self.labels.kind == kind) & self.labels.scored)
        if idx.size == 0:  # a label file without scored labels of this kind
            return []
        best = idx[np.argsort(-scores[idx], kind="stable")][:k]
        top = scores[best[0]]
        return [int(i) for i in best if scores[i] >= threshold and scores[i] >= top - self.domain_margin]

    def _phrases(self, prompt_vec: np.ndarray, cand: list[str], rows: np.ndarray, labels: list[str]) -> list[str]:
        """KeyBERT + MMR over one prompt's candidates. rows: [n, 384] candidate embeddings."""
        if not cand:
            return []
        sims = _prefer_shorter(cand, rows @ prompt_vec, self.shorter_margin)  # [n]
        keep: list[str] = []
        for i in mmr(sims, rows, k=len(cand), diversity=self.diversity):
            if sims[i] < self.phrase_threshold or len(keep) >= self.max_phrases:
                break
            if not any(_overlaps(cand[i], other) for other in [*labels, *keep]):
                keep.append(cand[i])
        return keep

    def _combine(self, labels: list[str], phrases: list[str], text: str, scores: np.ndarray) -> list[str]:
        """Labels, padding labels when evidence is thin, then keyphrases, at most ``max_tags``."""
        pads: list[str] = []
        if len(labels) + len(phrases) < self.min_tags and not is_mostly_cjk(text):
            # Too little evidence: add the next-best labels so routing has something.
            for i in np.argsort(-scores, kind="stable"):
                name = self.labels.labels[i].name
                if len(labels) + len(pads) + len(phrases) >= self.min_tags or scores[i] < self.pad_threshold:
                    break
                if self.labels.kind[i] != 1 and self.labels.scored[i] and name not in labels:
                    pads.append(name)
        return list(dict.fromkeys([*labels, *pads, *phrases]))[: self.max_tags]


def _prefer_shorter(cand: list[str], sims: np.ndarray, margin: float) -> np.ndarray:
    """Suppress an n-gram when a phrase one word shorter inside it scores about as well.

    Without a POS tagger, runs of non-stopwords often end on a verb ("crocodile
    grows"); the verb adds little similarity, so the shorter phrase wins.
    """
    pos = {p: i for i, p in enumerate(cand)}
    out = sims.copy()
    for i, phrase in enumerate(cand):
        words = phrase.split()
        if len(words) < 2:
            continue
        subs = [pos[s] for s in (" ".join(words[1:]), " ".join(words[:-1])) if s in pos]
        if subs and max(sims[j] for j in subs) >= sims[i] - margin:
            out[i] = -np.inf
    return out


def _overlaps(a: str, b: str) -> bool:
    """True when one phrase's words contain the other's ("crossword" vs "crossword puzzle").

    Words compare by their first 6 letters, a crude stem, so "recipes" repeats the
    label "recipe" and "summarize" repeats "summarization" (but "cookies" is not "cooking").
    """
    wa, wb = {w[:6] for w in a.split()}, {w[:6] for w in b.split()}
    return wa <= wb or wb <= wa


taggers.add("offline", OfflineTagger)
