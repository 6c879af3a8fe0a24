"""The S3 blob store against a real S3-protocol server (moto's, over HTTP on loopback), one contract for
both stores, and a report photo going through the API and the photo worker into a bucket and back out.

No client is mocked: obstore signs and sends real requests, moto answers them as S3 would.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import obstore
import pytest
from moto.server import ThreadedMotoServer
from obstore.store import S3Store
from PIL import Image

from gridrider.config import SettingsError, load_settings
from gridrider.images.blobs import BlobStore, InvalidBlobKey, LocalBlobStore, build_blob_store, new_blob_key
from gridrider.images.s3_blobs import S3BlobStore, virtual_hosted_endpoint
from gridrider.jobs.maintenance import schedule_maintenance
from gridrider.services import Services
from tests.conftest import make_settings
from tests.factories import make_member, make_photo, make_report
from tests.jobs.conftest import run_burst
from tests.jobs.test_photos import GRID, report_with, settle

ACCESS_KEY_ID = "gridrider-test"
# Recognisable, so a test can prove it never shows up where it should not.
SECRET = "s3-secret-" + "k" * 30

BAD_KEYS = [
    "../../etc/passwd",
    "/orig/2026/11/26/" + "a" * 32 + ".jpg",
    "orig/2026/11/26/../../" + "a" * 32,
    "ORIG/2026/11/26/" + "a" * 32 + ".jpg",
    "orig/2026/11/26/" + "a" * 32 + ".jpg\n",
    "orig/2026/11/26/not-a-uuid.jpg",
    "",
]


# ── a real S3-protocol server ─────────────────────────────────────────────────────────────────────

@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on a free loopback port, for the whole session (each test takes its own bucket)."""
    # One line per request on stderr would bury a failing test's own output.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    name = f"gridrider-{uuid.uuid4().hex[:12]}"
    # CreateBucket over plain HTTP: moto, like a fresh MinIO, does not check signatures unless told to.
    assert httpx.put(f"{s3_endpoint}/{name}").status_code == 200
    return name


def s3_env(endpoint: str, bucket: str, **extra: str) -> dict[str, str]:
    return {
        "GRIDRIDER_BLOB_STORE": "s3", "GRIDRIDER_S3_ENDPOINT": endpoint, "GRIDRIDER_S3_BUCKET": bucket,
        "GRIDRIDER_S3_ACCESS_KEY_ID": ACCESS_KEY_ID, "GRIDRIDER_S3_SECRET_ACCESS_KEY": SECRET, **extra,
    }


def raw_bucket(endpoint: str, bucket: str, prefix: str | None = None) -> S3Store:
    """The bucket as an outsider sees it: to check what landed where, and to leave objects that are not ours."""
    return S3Store(bucket, prefix=prefix, config={"endpoint": endpoint, "region": "us-east-1",
                                                  "access_key_id": ACCESS_KEY_ID, "secret_access_key": SECRET},
                   client_options={"allow_http": True})


async def bucket_keys(endpoint: str, bucket: str) -> set[str]:
    return {meta["path"] for meta in await obstore.list(raw_bucket(endpoint, bucket)).collect_async()}


# ── one contract, both stores ─────────────────────────────────────────────────────────────────────

@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """Each store built by the factory from settings, as the API and the workers build theirs."""
    if request.param == "local":
        return build_blob_store(load_settings({"GRIDRIDER_DATA_DIR": str(tmp_path)}))
    endpoint, name = request.getfixturevalue("s3_endpoint"), request.getfixturevalue("bucket")
    return build_blob_store(load_settings(s3_env(endpoint, name)))


async def leave_stranger(store: BlobStore, name: str) -> None:
    """An object the server did not make (an operator's note, a stray upload) where the store lists."""
    if isinstance(store, LocalBlobStore):
        path = store.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not ours")
    else:
        assert isinstance(store, S3BlobStore)
        await obstore.put_async(raw_bucket(store.endpoint, store.bucket), name, b"not ours")


def key(kind: str = "orig", extension: str = "jpg") -> str:
    return new_blob_key(kind, dt.datetime.now(dt.UTC), extension)


async def test_a_blob_reads_back_whole_and_a_second_put_replaces_it(store):
    blob = key()
    await store.put(blob, b"\xff\xd8\xff first")
    assert await store.get(blob) == b"\xff\xd8\xff first"
    await store.put(blob, b"\xff\xd8\xff second")
    assert await store.get(blob) == b"\xff\xd8\xff second"


async def test_a_multi_megabyte_photo_reads_back_byte_for_byte(store):
    blob, data = key(), bytes(range(256)) * (5 * 4096 + 7)  # over 5 MB: several read pieces, no multipart
    await store.put(blob, data)
    assert await store.get(blob) == data


async def test_a_missing_key_raises_file_not_found_like_a_missing_file(store):
    with pytest.raises(FileNotFoundError):
        await store.get(key())


async def test_delete_removes_the_blob_and_deleting_again_is_not_an_error(store):
    blob = key("thumb")
    await store.put(blob, b"thumb")
    await store.delete(blob)
    with pytest.raises(FileNotFoundError):
        await store.get(blob)
    await store.delete(blob)


async def test_keys_older_than_lists_our_keys_written_before_the_cutoff_and_nothing_else(store):
    old = key("orig")
    await store.put(old, b"old")
    # S3's Last-Modified has whole seconds (moto's too): put the cutoff on the next second boundary and
    # write the newer blob only after it, so "before" and "after" cannot fall in the same second.
    cutoff = dt.datetime.fromtimestamp(int(time.time()) + 1, dt.UTC)
    await asyncio.sleep(cutoff.timestamp() - time.time() + 0.05)
    new = key("display", "webp")
    await store.put(new, b"new")
    await leave_stranger(store, "README")
    await leave_stranger(store, "orig/2026/11/26/not-a-uuid.jpg")

    assert [k async for k in store.keys_older_than(cutoff)] == [old]
    later = cutoff + dt.timedelta(hours=1)
    assert sorted([k async for k in store.keys_older_than(later)]) == sorted([old, new])
    assert [k async for k in store.keys_older_than(cutoff - dt.timedelta(hours=1))] == []


@pytest.mark.parametrize("bad", BAD_KEYS)
async def test_a_key_the_server_did_not_make_is_refused(store, bad):
    with pytest.raises(InvalidBlobKey):
        await store.put(bad, b"x")
    with pytest.raises(InvalidBlobKey):
        await store.get(bad)
    with pytest.raises(InvalidBlobKey):
        await store.delete(bad)


# ── S3 only ───────────────────────────────────────────────────────────────────────────────────────

async def test_an_invalid_key_is_refused_before_any_request_is_sent():
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    try:
        port = listener.getsockname()[1]
        store = S3BlobStore(bucket="photos", endpoint=f"http://127.0.0.1:{port}", access_key_id=ACCESS_KEY_ID,
                            secret_access_key=SECRET)
        for bad in BAD_KEYS:
            for call in (store.put(bad, b"x"), store.get(bad), store.delete(bad)):
                with pytest.raises(InvalidBlobKey):
                    await call
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
        # The control: a valid key does reach this listener (which never answers), so the check above could fail.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(store.get(key()), 0.5)
        listener.setblocking(True)
        listener.settimeout(2)
        listener.accept()[0].close()
    finally:
        listener.close()


async def test_objects_land_under_the_prefix_and_other_prefixes_do_not_see_them(s3_endpoint, bucket):
    prod = build_blob_store(load_settings(s3_env(s3_endpoint, bucket, GRIDRIDER_S3_PREFIX="/gridrider/prod/")))
    staging = build_blob_store(load_settings(s3_env(s3_endpoint, bucket, GRIDRIDER_S3_PREFIX="gridrider/staging")))
    blob = key()
    await prod.put(blob, b"prod photo")

    assert await bucket_keys(s3_endpoint, bucket) == {f"gridrider/prod/{blob}"}
    with pytest.raises(FileNotFoundError):
        await staging.get(blob)
    future = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert [k async for k in staging.keys_older_than(future)] == []
    assert [k async for k in prod.keys_older_than(future)] == [blob]  # keys come back without the prefix


def test_virtual_hosted_style_puts_the_bucket_in_the_host():
    assert virtual_hosted_endpoint("https://oss-cn-hangzhou.aliyuncs.com", "gr-photos") == \
        "https://gr-photos.oss-cn-hangzhou.aliyuncs.com"
    assert virtual_hosted_endpoint("http://minio.internal:9000", "gr") == "http://gr.minio.internal:9000"
    # Already there (an operator who pasted the bucket's own endpoint): unchanged.
    assert virtual_hosted_endpoint("https://gr.s3.cn-north-1.amazonaws.com.cn", "gr") == \
        "https://gr.s3.cn-north-1.amazonaws.com.cn"


async def test_the_secret_stays_out_of_the_store_and_its_errors(s3_endpoint):
    store = build_blob_store(load_settings(s3_env(s3_endpoint, "no-such-bucket")))
    assert SECRET not in repr(store) and SECRET not in str(vars(store))
    with pytest.raises(Exception) as caught:  # noqa: PT011 - whatever obstore raises, its text must not carry it
        await store.put(key(), b"x")
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)


# ── settings ──────────────────────────────────────────────────────────────────────────────────────

def test_s3_settings_are_read_and_local_stays_the_default(tmp_path):
    assert isinstance(build_blob_store(load_settings({"GRIDRIDER_DATA_DIR": str(tmp_path)})), LocalBlobStore)
    settings = load_settings(s3_env("https://oss-cn-hangzhou.aliyuncs.com/", "gr-photos",
                                    GRIDRIDER_S3_REGION="cn-hangzhou", GRIDRIDER_S3_ADDRESSING="virtual",
                                    GRIDRIDER_S3_PREFIX="gridrider/prod/"))
    assert (settings.blob_store, settings.s3_endpoint, settings.s3_addressing, settings.s3_prefix) == \
        ("s3", "https://oss-cn-hangzhou.aliyuncs.com", "virtual", "gridrider/prod")
    store = build_blob_store(settings)
    assert isinstance(store, S3BlobStore) and (store.bucket, store.prefix) == ("gr-photos", "gridrider/prod")


def test_the_s3_secret_may_come_from_a_file(tmp_path):
    secret_file = tmp_path / "s3-secret"
    secret_file.write_text(SECRET + "\n")
    env = s3_env("http://minio:9000", "gr-photos", GRIDRIDER_S3_SECRET_ACCESS_KEY_FILE=str(secret_file))
    del env["GRIDRIDER_S3_SECRET_ACCESS_KEY"]
    assert load_settings(env).s3_secret_access_key == SECRET


@pytest.mark.parametrize(("change", "names", "says"), [
    ({"GRIDRIDER_BLOB_STORE": "gcs"}, "GRIDRIDER_BLOB_STORE", "local or s3"),
    ({"GRIDRIDER_S3_BUCKET": ""}, "GRIDRIDER_S3_BUCKET", "needed when GRIDRIDER_BLOB_STORE=s3"),
    ({"GRIDRIDER_S3_BUCKET": "My_Photos"}, "GRIDRIDER_S3_BUCKET", "bucket name"),
    ({"GRIDRIDER_S3_ENDPOINT": "minio:9000"}, "GRIDRIDER_S3_ENDPOINT", "http"),
    ({"GRIDRIDER_S3_ADDRESSING": "dns"}, "GRIDRIDER_S3_ADDRESSING", "path or virtual"),
    ({"GRIDRIDER_S3_PREFIX": "gridrider/../other"}, "GRIDRIDER_S3_PREFIX", "folder names"),
    ({"GRIDRIDER_S3_REGION": "US East"}, "GRIDRIDER_S3_REGION", "region"),
    ({"GRIDRIDER_S3_ACCESS_KEY_ID": ""}, "GRIDRIDER_S3_ACCESS_KEY_ID", "both, or neither"),
])
def test_a_bad_s3_setting_names_itself_and_never_echoes_the_secret(change, names, says):
    with pytest.raises(SettingsError) as caught:
        load_settings({**s3_env("http://minio:9000", "gr-photos"), **change})
    assert str(caught.value).startswith(names) and says in str(caught.value)
    assert SECRET not in str(caught.value)


# ── end to end: API + photo worker on the S3 store ───────────────────────────────────────────────

@pytest.fixture
def settings(tmp_path, database_url, redis_url, vapid_pem, s3_endpoint, bucket):
    """This module's API and workers keep photos in the test's bucket (conftest's `client` builds on this)."""
    return make_settings(tmp_path / "data", database_url, redis_url, vapid_pem, blob_store="s3",
                         s3_endpoint=s3_endpoint, s3_bucket=bucket, s3_access_key_id=ACCESS_KEY_ID,
                         s3_secret_access_key=SECRET, s3_prefix="gridrider/test")


async def test_a_report_photo_is_stored_normalised_and_served_from_the_bucket(
    client, settings, clock, db, login, street_photos, s3_endpoint, bucket, caplog,
):
    caplog.set_level(logging.DEBUG)
    courier = await login("courier", "13966660000", [GRID])
    photo = street_photos[0]  # a real phone JPEG with EXIF GPS
    report = await report_with(client, clock, courier, [photo])
    await settle(settings, clock)  # a real arq worker per queue, each building its store from the settings

    row = await db.fetchrow("SELECT state, original_key, display_key, thumb_key FROM photos")
    assert row["state"] == "ready"
    keys = {row["original_key"], row["display_key"], row["thumb_key"]}
    assert await bucket_keys(s3_endpoint, bucket) == {f"gridrider/test/{k}" for k in keys}
    assert not (settings.data_dir / "blobs").exists()  # nothing went to the local disk

    inside = raw_bucket(s3_endpoint, bucket, prefix="gridrider/test")
    assert bytes(await (await obstore.get_async(inside, row["original_key"])).bytes_async()) == photo
    fresh = (await client.get(f"/api/v1/reports/{report['id']}", headers=courier.headers)).json()
    for url_field, blob in (("display_url", row["display_key"]), ("thumb_url", row["thumb_key"])):
        served = await client.get(fresh["photos"][0][url_field])
        assert served.status_code == 200, served.text
        assert served.content == bytes(await (await obstore.get_async(inside, blob)).bytes_async())
        assert b"GPS" not in served.content
        Image.open(io.BytesIO(served.content)).verify()
    assert SECRET not in caplog.text


async def test_the_orphan_sweep_deletes_old_unreferenced_objects_from_the_bucket(settings, clock, db, redis,
                                                                                s3_endpoint, bucket):
    # Last-Modified is the S3 server's real time, in whole seconds: a one-second grace period, and the test
    # clock on the next whole second, divide "old" from "still within the grace period".
    settings = msgspec.structs.replace(settings, orphan_blob_age_s=1)
    store = build_blob_store(settings)
    referenced, orphan, fresh = key(), key(), key()
    for blob in (referenced, orphan):
        await store.put(blob, b"\xff\xd8\xff photo bytes")
    member = await make_member(db)
    await make_photo(db, report_id=await make_report(db, clock, reporter_id=member), original_key=referenced)
    cutoff = dt.datetime.fromtimestamp(int(time.time()) + 1, dt.UTC)
    await asyncio.sleep(cutoff.timestamp() - time.time() + 0.05)
    await store.put(fresh, b"a request about to commit its row")
    clock.set(cutoff + dt.timedelta(seconds=settings.orphan_blob_age_s))

    await schedule_maintenance(Services(settings=settings, clock=clock, pool=db, redis=redis, blobs=store))
    await run_burst(settings, clock)  # the worker builds its own S3 store from the settings

    assert await bucket_keys(s3_endpoint, bucket) == {f"gridrider/test/{referenced}", f"gridrider/test/{fresh}"}


# ── figures (printed with -s; no timed asserts) ──────────────────────────────────────────────────

def three_megabyte_photo(source: bytes) -> bytes:
    """A real photo scaled up to a phone camera's size and quality, about 3 MB."""
    picture = Image.open(io.BytesIO(source)).convert("RGB").resize((4000, 3000), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    picture.save(out, "JPEG", quality=97)
    return out.getvalue()


@pytest.mark.parametrize("kind", ["local", "s3"])
async def test_figures_put_and_get_of_a_3_mb_photo(kind, tmp_path, street_photos, request):
    if kind == "local":
        store: BlobStore = LocalBlobStore(tmp_path / "blobs")
    else:
        store = build_blob_store(load_settings(s3_env(request.getfixturevalue("s3_endpoint"),
                                                      request.getfixturevalue("bucket"))))
    data = three_megabyte_photo(street_photos[0])
    puts, gets = [], []
    for _ in range(7):
        blob = key()
        started = time.perf_counter()
        await store.put(blob, data)
        puts.append(time.perf_counter() - started)
        started = time.perf_counter()
        assert await store.get(blob) == data
        gets.append(time.perf_counter() - started)
    print(f"\n{kind}: {len(data) / 1e6:.2f} MB photo, put median {statistics.median(puts) * 1000:.1f} ms "
          f"(min {min(puts) * 1000:.1f}), get median {statistics.median(gets) * 1000:.1f} ms "
          f"(min {min(gets) * 1000:.1f}) over {len(puts)} runs")
