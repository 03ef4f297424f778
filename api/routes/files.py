"""OpenAI Files API (purpose ``batch``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import FileResponse

from api.deps import owner, settings
from switchyard.config import Settings
from switchyard.files import get_file, save_upload

router = APIRouter(prefix="/v1/files", tags=["files"])


@router.post("")
def upload(file: UploadFile = File(...), purpose: str = Form(...), key: str = Depends(owner),
           s: Settings = Depends(settings)) -> dict[str, Any]:
    return save_upload(s, file.file, filename=file.filename or "upload.jsonl", purpose=purpose, owner=key).to_json()


@router.get("/{file_id}")
def retrieve(file_id: str, key: str = Depends(owner), s: Settings = Depends(settings)) -> dict[str, Any]:
    return get_file(s, file_id, owner=key).to_json()


@router.get("/{file_id}/content", response_class=FileResponse)
def content(file_id: str, key: str = Depends(owner), s: Settings = Depends(settings)) -> FileResponse:
    f = get_file(s, file_id, owner=key)
    return FileResponse(f.path, media_type="application/jsonl", filename=f.filename)
