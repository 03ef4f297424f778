"""The model catalog: YAML -> typed, validated records.

A catalog has ``providers`` (how to reach an endpoint, and its concurrency or rate
limit) and ``models`` (what each model costs and can do). Routing policies see only
:class:`Catalog`; dispatch uses :class:`ProviderConfig` to build a client.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from switchyard.errors import ConfigError, UnknownModel


class ProviderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    # A built-in kind, or a plugin given as "package.module:ProviderClass".
    kind: Literal["openai", "transformers", "replay"] | Annotated[str, StringConstraints(pattern=r"^[\w.]+:\w+$")]
    base_url: str | None = None
    api_key_env: str | None = Field(None, description="name of the env var holding the key; never the key")
    max_concurrency: int = Field(16, ge=1, description="in-flight calls across all dispatch workers")
    rate_limit_rps: float | None = Field(None, gt=0, description="requests per second across all workers")
    timeout_s: float | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    def available(self) -> bool:
        """A provider whose key env var is named but unset cannot be called."""
        return self.api_key_env is None or bool(os.environ.get(self.api_key_env))


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    id: str
    provider: str
    upstream: str | None = Field(None, description="the model name at the provider; default = id")
    usd_per_mtok_input: float = Field(0.0, ge=0)
    usd_per_mtok_output: float = Field(0.0, ge=0)
    context_length: int = Field(8192, ge=1)
    params_b: float | None = Field(None, ge=0, description="parameter count in billions")
    release_date: dt.date | None = None
    description: str = ""
    expected_output_tokens: float = Field(256.0, ge=0, description="used to predict cost before the call")
    latency_ms: float | None = Field(None, ge=0, description="observed typical latency")
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def upstream_name(self) -> str:
        return self.upstream or self.id

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD for one call with these exact token counts."""
        return (input_tokens * self.usd_per_mtok_input + output_tokens * self.usd_per_mtok_output) / 1e6

    def predicted_cost(self, input_tokens: float) -> float:
        return self.cost(input_tokens, self.expected_output_tokens)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    models: list[Model]

    @model_validator(mode="before")
    @classmethod
    def _name_providers(cls, data: Any) -> Any:
        # YAML writes providers as a mapping; the name is the key.
        if isinstance(data, dict) and isinstance(data.get("providers"), dict):
            provs = {}
            for name, cfg in data["providers"].items():
                provs[name] = {"name": name, **cfg} if isinstance(cfg, dict) else cfg
            data = {**data, "providers": provs}
        return data

    @model_validator(mode="after")
    def _check(self) -> Catalog:
        seen: set[str] = set()
        for m in self.models:
            if m.id in seen:
                raise ValueError(f"model id {m.id!r} appears twice; ids must be unique")
            seen.add(m.id)
            if m.provider not in self.providers:
                raise ValueError(
                    f"model {m.id!r} names provider {m.provider!r}, which is not under 'providers:' "
                    f"(known: {', '.join(sorted(self.providers)) or 'none'})"
                )
        if not self.models:
            raise ValueError("the catalog lists no models; add at least one under 'models:'")
        return self

    # --- lookups ---------------------------------------------------------------------
    def __iter__(self) -> Iterator[Model]:  # type: ignore[override]
        return iter(self.models)

    def __contains__(self, model_id: object) -> bool:
        return any(m.id == model_id for m in self.models)

    def ids(self) -> list[str]:
        return [m.id for m in self.models]

    def get(self, model_id: str) -> Model:
        for m in self.models:
            if m.id == model_id:
                return m
        raise UnknownModel(f"model {model_id!r} is not in the catalog; known: {', '.join(self.ids())}")

    def provider_of(self, model_id: str) -> ProviderConfig:
        return self.providers[self.get(model_id).provider]

    def available_ids(self) -> list[str]:
        """Models whose provider can be called now (its key env var, if named, is set)."""
        return [m.id for m in self.models if self.providers[m.provider].available()]

    def subset(self, ids: Iterable[str]) -> Catalog:
        keep = set(ids)
        models = [m for m in self.models if m.id in keep]
        return Catalog(providers=self.providers, models=models)

    # --- loading ---------------------------------------------------------------------
    @classmethod
    def from_yaml_text(cls, text: str, *, source: str = "<catalog>") -> Catalog:
        data = parse_yaml(text, source)
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: the catalog must be a mapping with 'providers:' and 'models:'")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise ConfigError(f"{source}: {_describe(e)}") from None
        except RecursionError:  # a YAML alias that contains itself
            raise ConfigError(f"{source}: a value refers to itself (a recursive YAML alias); "
                              "write it out") from None

    @classmethod
    def load(cls, path: Path | None = None) -> Catalog:
        """Load ``path``, or the built-in demo catalog (local SmolLM2) when None."""
        if path is None:
            text = resources.files("switchyard").joinpath("data/catalog.yaml").read_text()
            return cls.from_yaml_text(text, source="switchyard/data/catalog.yaml")
        return cls.from_yaml_text(read_text(path, "catalog", "SWITCHYARD_CATALOG_PATH"), source=str(path))


def read_text(path: Path, what: str, setting: str) -> str:
    """A config file's text; a missing or non-UTF-8 file is a ConfigError naming it."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read {what} {path}: {e.strerror}; set {setting}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}: line {line}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8"
                          ) from None


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` (never constructs objects), with syntax and nesting errors as ConfigError."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({e}); fix the syntax near the marked line") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be a config file") from None


def _describe(e: ValidationError) -> str:
    parts = []
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"field '{loc}': {err['msg']}")
    return "; ".join(parts)
