"""Photos in an S3-compatible bucket (AWS S3, MinIO, Aliyun OSS) through obstore's async client.

The same contract as LocalBlobStore: the same key rules, checked before any request; a missing key
raises FileNotFoundError; deleting a missing key is not an error; the orphan sweep judges age by
the object's Last-Modified time and ignores objects whose names are not ours.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import obstore
from obstore.store import S3Store

from gridrider.images.blobs import checked_key, is_blob_key

if TYPE_CHECKING:
    from obstore.store import RetryConfig, S3Config

# obstore's default is ten retries over up to three minutes. A photo request should fail while the
# rider's page is still open, and a failed job is retried by the relay anyway.
_RETRY: RetryConfig = {"max_retries": 3, "retry_timeout": dt.timedelta(seconds=20)}
# S3 returns at most 1000 keys per listing page; a smaller page only adds round trips.
_LIST_PAGE = 1000
# get() copies the body into its buffer in pieces of at least this size as they arrive.
_READ_PIECE = 256 * 1024


def virtual_hosted_endpoint(endpoint: str, bucket: str) -> str:
    """`https://oss-cn-hangzhou.aliyuncs.com` → `https://<bucket>.oss-cn-hangzhou.aliyuncs.com`.

    In virtual-hosted style obstore sends requests to the endpoint as given, so it must name the bucket
    already; operators are asked for the service's endpoint, the one their provider documents.
    """
    parts = urlsplit(endpoint)
    if parts.netloc.startswith(f"{bucket}."):
        return endpoint
    return parts._replace(netloc=f"{bucket}.{parts.netloc}").geturl()


class S3BlobStore:
    """Objects in one bucket, under an optional prefix. The secret is handed to obstore and kept nowhere here."""

    def __init__(self, *, bucket: str, endpoint: str = "", region: str = "us-east-1", addressing: str = "path",
                 access_key_id: str = "", secret_access_key: str = "", prefix: str = "") -> None:
        virtual = addressing == "virtual"
        config: S3Config = {
            "region": region,
            "virtual_hosted_style_request": virtual,
            # One DELETE per key: bulk DeleteObjects is missing from some S3-compatible services (obstore's
            # docs name Aliyun OSS), and every caller deletes one key at a time anyway.
            "disable_bulk_delete": True,
        }
        if endpoint:
            config["endpoint"] = virtual_hosted_endpoint(endpoint, bucket) if virtual else endpoint
        if access_key_id:
            config["access_key_id"] = access_key_id
            config["secret_access_key"] = secret_access_key
        # Without a key pair obstore follows the AWS credential chain (AWS_* environment, web identity, instance role).
        self._store = S3Store(
            bucket, prefix=prefix.strip("/") or None, config=config, retry_config=_RETRY,
            # Plain HTTP only when the operator wrote an http:// endpoint (a MinIO on a private network).
            client_options={"allow_http": endpoint.startswith("http://")},
        )
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint

    def __repr__(self) -> str:
        return f"S3BlobStore(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint={self.endpoint!r})"

    async def put(self, key: str, data: bytes) -> None:
        # obstore reads `data` through the buffer protocol, without copying the upload intake already holds.
        # A single PUT rather than multipart: photos are at most 12 MB, and an aborted multipart upload
        # leaves invisible parts that are billed until a lifecycle rule removes them.
        await obstore.put_async(self._store, checked_key(key), data, use_multipart=False)

    async def get(self, key: str) -> bytes:
        # A missing object raises the builtin FileNotFoundError (obstore's documented mapping), as a
        # missing file does in LocalBlobStore, so callers need not know which store they have.
        result = await obstore.get_async(self._store, checked_key(key))
        # Pieces go into one BytesIO as they arrive, and getvalue() hands over that buffer without copying
        # it: the photo is held once (plus a piece), not once in obstore's buffer and again as bytes.
        buffer = io.BytesIO()
        async for piece in result.stream(min_chunk_size=_READ_PIECE):
            buffer.write(piece)
        return buffer.getvalue()

    async def delete(self, key: str) -> None:
        # S3 answers a missing key with success; some compatible services say 404. Either way it is gone,
        # as with LocalBlobStore's unlink(missing_ok=True).
        with contextlib.suppress(FileNotFoundError):
            await obstore.delete_async(self._store, checked_key(key))

    async def keys_older_than(self, cutoff: dt.datetime) -> AsyncIterator[str]:
        async for page in obstore.list(self._store, chunk_size=_LIST_PAGE):
            for meta in page:
                # Other objects in the bucket (or under the prefix) are not ours to judge, as locally.
                if meta["last_modified"] < cutoff and is_blob_key(meta["path"]):
                    yield meta["path"]
