"""Uploaded files: streamed to a temporary file with a size cap, then type-checked.

The type is decided from the bytes, never from the name or the declared content type:
XLSX is a ZIP container; CSV must be text (no NUL bytes in the first block). Anything else
answers 415. Oversized files answer 413 (also enforced earlier by the body-size middleware).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from fastapi import UploadFile

from api.errors import ApiError

CHUNK = 1024 * 1024
ZIP_MAGIC = b"PK\x03\x04"
#: Other binary formats people upload by mistake (XLS, PDF, images...): clearer message.
_BINARY_HINTS = {
    b"\xd0\xcf\x11\xe0": "an old Excel (.xls) or other OLE file: save it as .xlsx or .csv",
    b"%PDF": "a PDF",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
}

FileKind = Literal["csv", "xlsx"]


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)


def upload_dir(data_dir: Path) -> Path:
    path = data_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def save_upload(upload: UploadFile, dest_dir: Path, max_bytes: int) -> Path:
    """Copy the upload to a temp file in ``dest_dir``; 413 past ``max_bytes``."""
    suffix = Path(upload.filename or "upload").suffix.lower()[:8]
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on success
        dir=dest_dir, prefix="upload-", suffix=suffix, delete=False
    )
    path = Path(handle.name)
    size = 0
    try:
        with handle:
            while chunk := await upload.read(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise ApiError(
                        413,
                        "payload_too_large",
                        f"the file is larger than the limit of {max_bytes // (1024 * 1024)} MB",
                        {"limit_bytes": max_bytes},
                    )
                handle.write(chunk)
    except BaseException:
        remove(path)
        raise
    if size == 0:
        remove(path)
        raise ApiError(422, "empty_file", "the uploaded file is empty")
    return path


def file_kind(path: Path) -> FileKind:
    """``csv`` or ``xlsx`` from the first bytes; 415 for anything else."""
    with path.open("rb") as fh:
        head = fh.read(8192)
    if head.startswith(ZIP_MAGIC):
        return "xlsx"
    for magic, what in _BINARY_HINTS.items():
        if head.startswith(magic):
            raise ApiError(
                415,
                "unsupported_file_type",
                f"the file looks like {what}; upload a CSV or XLSX file",
            )
    utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
    if b"\x00" in head and not utf16:
        raise ApiError(
            415, "unsupported_file_type", "the file is not text or XLSX; upload a CSV or XLSX file"
        )
    return "csv"
