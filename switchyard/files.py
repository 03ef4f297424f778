"""Uploaded job files (OpenAI Files API) and the virtual output / error files of a job.

An upload is checked for size and line count, written under ``data_dir/files/uploads``
and recorded in ``StoredFile``. A finished job's output and error files are addressed as
``file-out-<job>`` / ``file-err-<job>`` and read from the files finalize wrote.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from switchyard.config import Settings
from switchyard.errors import InputError, NotFound, PayloadTooLarge
from switchyard.store.db import session_scope
from switchyard.store.models import Job, StoredFile

OUT_PREFIX, ERR_PREFIX = "file-out-", "file-err-"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileInfo:
    id: str
    filename: str
    bytes: int
    purpose: str
    created_at: int
    path: Path

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


def save_upload(settings: Settings, src: BinaryIO, *, filename: str, purpose: str, owner: str | None) -> FileInfo:
    if purpose != "batch":
        raise InputError(f"purpose {purpose!r} is not supported; use 'batch'", field="purpose")
    file_id = f"file-{secrets.token_hex(12)}"
    d = Path(settings.data_dir).resolve() / "files" / "uploads"
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{file_id}.jsonl"
    size, lines = 0, 0
    with path.open("wb") as out:
        while chunk := src.read(_CHUNK):
            size += len(chunk)
            lines += chunk.count(b"\n")
            if size > settings.max_upload_bytes or lines > settings.max_upload_lines:
                out.close()
                path.unlink(missing_ok=True)
                raise PayloadTooLarge(f"file {filename!r} is over the limit of {settings.max_upload_bytes} bytes / "
                                 f"{settings.max_upload_lines} lines; split it into several batches", field="file")
            out.write(chunk)
    with session_scope(settings) as s:
        row = StoredFile(id=file_id, owner=owner, purpose=purpose, filename=filename, bytes=size, lines=lines,
                         path=str(path))
        s.add(row)
        created = int(row.created_at.timestamp())
    return FileInfo(file_id, filename, size, purpose, created, path)


def get_file(settings: Settings, file_id: str, *, owner: str | None) -> FileInfo:
    """An upload or a job's output/error file, if ``owner`` may see it."""
    for prefix, kind in ((OUT_PREFIX, "output"), (ERR_PREFIX, "errors")):
        if file_id.startswith(prefix):
            return _job_file(settings, file_id, file_id[len(prefix):], kind, owner)
    with session_scope(settings) as s:
        row = s.get(StoredFile, file_id)
        if row is None or (owner is not None and row.owner != owner):
            raise NotFound(f"no file {file_id!r}")
        return FileInfo(row.id, row.filename, row.bytes, row.purpose, int(row.created_at.timestamp()),
                        Path(row.path))


def _job_file(settings: Settings, file_id: str, job_id: str, kind: str, owner: str | None) -> FileInfo:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise NotFound(f"no file {file_id!r}")
        path = job.output_path if kind == "output" else job.error_path
        if not path:
            raise NotFound(f"file {file_id!r} is not ready: the batch has not finished")
        created = int((job.finished_at or job.created_at).timestamp())
    p = Path(path)
    return FileInfo(file_id, f"{job_id}_{kind}.jsonl", p.stat().st_size, "batch_output", created, p)
