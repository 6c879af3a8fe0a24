"""Blob store behind one small interface: put / get / delete / list old keys.

The local directory store is the default; `GRIDRIDER_BLOB_STORE=s3` picks the S3-compatible one
(images/s3_blobs.py), and `build_blob_store` is the one place that chooses.
Keys are made by the server (never from user input) and look like `orig/2026/11/26/<uuid>.jpg`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from gridrider.config import Settings

_KEY = re.compile(r"^[a-z]+(/[0-9]{2,4}){3}/[0-9a-f]{32}(\.[a-z0-9]{2,5})?$")


class BlobStore(Protocol):
    # get() returns the whole photo because both callers need one bytes object: the photo worker sends it
    # to its sandbox process and api/media.py answers with a bytes Response. Stores hold it once, not twice.
    # A stream(key) belongs here only together with a media endpoint that streams its response.
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    def keys_older_than(self, cutoff: dt.datetime) -> AsyncIterator[str]: ...


def new_blob_key(kind: str, now: dt.datetime, extension: str = "") -> str:
    suffix = f".{extension}" if extension else ""
    return f"{kind}/{now:%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


class InvalidBlobKey(ValueError):
    pass


def is_blob_key(key: str) -> bool:
    # fullmatch, not match: `$` alone would also accept a key ending in a newline.
    return _KEY.fullmatch(key) is not None


def checked_key(key: str) -> str:
    """The key unchanged, or InvalidBlobKey: every store calls this before it touches disk or network."""
    if not is_blob_key(key):
        raise InvalidBlobKey(key)
    return key


def build_blob_store(settings: Settings) -> BlobStore:
    """The store the settings name; the API, the workers and the CLI all build theirs here."""
    if settings.blob_store == "s3":
        # Imported here: s3_blobs builds on this module's key rules, and a local deployment never loads obstore.
        from gridrider.images.s3_blobs import S3BlobStore

        return S3BlobStore(
            bucket=settings.s3_bucket, endpoint=settings.s3_endpoint, region=settings.s3_region,
            addressing=settings.s3_addressing, access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key, prefix=settings.s3_prefix,
        )
    return LocalBlobStore(settings.data_dir / "blobs")


class LocalBlobStore:
    """Files under one root directory; writes go to a temp file first so readers never see halves."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / checked_key(key)

    async def put(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._put_sync, self._path(key), data)

    @staticmethod
    def _put_sync(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    async def get(self, key: str) -> bytes:
        return await asyncio.to_thread(self._path(key).read_bytes)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, True)

    async def keys_older_than(self, cutoff: dt.datetime) -> AsyncIterator[str]:
        limit = cutoff.timestamp()
        batch = await asyncio.to_thread(self._scan, limit)
        for key in batch:
            yield key

    def _scan(self, limit: float) -> list[str]:
        found = []
        if not self.root.exists():
            return found
        for dirpath, _dirs, files in os.walk(self.root):
            for name in files:
                path = Path(dirpath) / name
                key = path.relative_to(self.root).as_posix()
                if not is_blob_key(key):
                    continue  # temp files and strangers are not ours to judge
                try:
                    if path.stat().st_mtime < limit:
                        found.append(key)
                except FileNotFoundError:
                    continue
        return found
