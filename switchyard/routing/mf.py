"""``mf``: RouteLLM-style matrix factorisation of prompt x model quality.

Ong et al., "RouteLLM: Learning to Route LLMs with Preference Data" (2024). RouteLLM's
MF router scores a (model, prompt) pair as ``w^T (v_m * (W p + b))``: a learned model
embedding ``v_m`` (L2-normalised) times a linear projection of the prompt's text
embedding, read out by a shared vector ``w``. RouteLLM trains it on pairwise
preferences between one strong and one weak model; our datasets give per-model
quality for any number of models, so here each model's logit is that bilinear score
plus a per-model bias, trained with the masked BCE of :mod:`switchyard.routing.quality`
on MiniLM embeddings. The decision is Tryage's penalised argmax (knob lambda): for two
models it is RouteLLM's "strong if predicted gain > threshold" rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from switchyard.catalog import Catalog
from switchyard.routing.base import RouteRequest, RoutingContext, TrainingSet, policies
from switchyard.routing.quality import (
    ATTRIBUTES,
    LazyArtifact,
    PenalisedQualityPolicy,
    PredictionMemo,
    Standardizer,
    TrainConfig,
    fit_quality_module,
    load_artifact,
    predict_quality,
    save_artifact,
    train_embeddings,
)


def build_mf(dim: int, rank: int, n_models: int) -> Any:
    """The bilinear module: logits [B, M] = w . (normalize(V_m) * (W x + b)) + c_m."""
    import torch

    class MF(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = torch.nn.Linear(dim, rank)
            self.models = torch.nn.Parameter(torch.randn(n_models, rank) * 0.1)
            self.readout = torch.nn.Linear(rank, 1, bias=False)
            self.bias = torch.nn.Parameter(torch.zeros(n_models))

        def forward(self, x: Any) -> Any:
            p = self.proj(x)  # [B, R]
            v = torch.nn.functional.normalize(self.models, dim=1)  # [M, R]
            inter = p[:, None, :] * v[None, :, :]  # [B, M, R]
            return self.readout(inter).squeeze(-1) + self.bias  # [B, M]

    return MF()


@policies.register("mf")
class MFPolicy(LazyArtifact, PenalisedQualityPolicy):
    name = "mf"
    knob_name = "lambda"
    knob_default = 0.1

    def __init__(self, *, rank: int = 64, flags: dict[str, float] | None = None, artifact: Path | None = None,
                 train_config: TrainConfig | None = None) -> None:
        self.rank = rank
        self.artifact = artifact
        self.train_config = train_config or TrainConfig(weight_decay=1e-3)
        if flags is None:
            from switchyard.config import get_settings

            flags = dict(get_settings().tryage_flags)
        self.default_flags = {k: float(v) for k, v in flags.items() if k in ATTRIBUTES}
        self.models: list[str] = []
        self.scaler: Standardizer | None = None
        self.net: Any = None
        self.meta: dict[str, Any] = {}
        self._memo = PredictionMemo()

    def fit(self, train: TrainingSet, catalog: Catalog, context: RoutingContext) -> None:
        import torch

        emb = train_embeddings(train, context)
        cols = [j for j in range(len(train.models)) if np.isfinite(train.quality[:, j]).any()]
        self.models = [train.models[j] for j in cols]
        self.scaler = Standardizer.fit(emb)
        cfg = TrainConfig(**{**self.train_config.__dict__, "seed": self.train_config.seed + context.seed})
        torch.manual_seed(cfg.seed)  # the initial weights are part of the seeded run
        self.net = build_mf(emb.shape[1], self.rank, len(self.models))
        # Start each model's bias at the logit of its mean train quality, so the factorised
        # term only has to learn the per-prompt deviations (with a zero start and early
        # stopping the biases stay near 0 and the weak model can outrank the strong one).
        with torch.no_grad():
            q = np.asarray(train.quality[:, cols], dtype=np.float64)
            means = np.clip(np.nan_to_num(np.nanmean(q, axis=0), nan=0.5), 1e-3, 1 - 1e-3)
            self.net.bias.copy_(torch.as_tensor(np.log(means / (1 - means)), dtype=torch.float32))
        stats = fit_quality_module(self.net, self.scaler(emb), np.asarray(train.quality[:, cols], dtype=np.float64),
                                   cfg)
        self.meta = {"n_train": len(emb), **stats}
        self._memo.clear()
        self.set_grid_from_train(train, catalog, context, emb)

    def _fitted(self) -> bool:
        return self.net is not None and self.scaler is not None and bool(self.models)

    def predict(self, requests: Sequence[RouteRequest], context: RoutingContext) -> tuple[list[str], np.ndarray]:
        assert self.scaler is not None
        scaler = self.scaler
        return self.models, self._memo.get_or_compute(
            requests, len(self.models), lambda rs: predict_quality(self.net, scaler(context.embed(rs))))

    def save(self, path: Path) -> None:
        import torch

        if not self._fitted() or self.scaler is None:
            raise ValueError("mf is not fitted; nothing to save")
        save_artifact(path, {"kind": "mf", "version": 1, "models": list(self.models), "rank": self.rank,
                             "flags": dict(self.default_flags), "mean": torch.as_tensor(self.scaler.mean),
                             "std": torch.as_tensor(self.scaler.std),
                             "state": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                             "meta": {k: v for k, v in self.meta.items() if isinstance(v, int | float | str)}})

    def load(self, path: Path) -> None:
        obj = load_artifact(path, "mf")
        self.models, self.rank = list(obj["models"]), int(obj["rank"])
        self.scaler = Standardizer(obj["mean"].numpy(), obj["std"].numpy())
        self.net = build_mf(int(self.scaler.mean.shape[0]), self.rank, len(self.models))
        self.net.load_state_dict(obj["state"])
        self.net.eval()
        self.meta = dict(obj.get("meta") or {})
        self._memo.clear()
