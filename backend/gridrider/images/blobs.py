"""Blob store behind one small interface: put / get / delete / list old keys.

The local directory store is the default; an S3-compatible store can implement the same methods.
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
from typing import Protocol

_KEY = re.compile(r"^[a-z]+(/[0-9]{2,4}){3}/[0-9a-f]{32}(\.[a-z0-9]{2,5})?$")


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def delete(self, key: str) -> None: ...
    def keys_older_than(self, cutoff: dt.datetime) -> AsyncIterator[str]: ...


def new_blob_key(kind: str, now: dt.datetime, extension: str = "") -> str:
    suffix = f".{extension}" if extension else ""
    return f"{kind}/{now:%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"


class InvalidBlobKey(ValueError):
    pass


class LocalBlobStore:
    """Files under one root directory; writes go to a temp file first so readers never see halves."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise InvalidBlobKey(key)
        return self.root / key

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
                if not _KEY.match(key):
                    continue  # temp files and strangers are not ours to judge
                try:
                    if path.stat().st_mtime < limit:
                        found.append(key)
                except FileNotFoundError:
                    continue
        return found
