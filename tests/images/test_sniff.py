"""sniff_photo: type by magic bytes, size and frames from the header only, PhotoRejected for anything else.

Real camera JPEGs come from the shared photos folder (../shared/photos/ from the project's root, see its
README); everything else is generated with Pillow or built byte by byte.
"""

from __future__ import annotations

import inspect
import io
import random
import resource
import struct
import time
import warnings
import zlib
from pathlib import Path

import msgspec
import pytest
from PIL import Image, ImageFile

from gridrider.images.sniff import MAX_PHOTO_BYTES, MAX_PIXELS, PhotoRejected, SniffedPhoto, sniff_photo

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "photos"
MISSING = f"these tests need the shared photos folder with real camera JPEGs at {PHOTOS} (see its README)"
REAL_PHOTOS = sorted(PHOTOS.glob("street/*.jpg")) + sorted(PHOTOS.glob("cameras/*.jpg"))
CODES = {"photo_too_large", "photo_type_not_allowed", "photo_too_many_pixels", "photo_animated", "photo_unreadable"}


def real_photo_params() -> list:
    if not REAL_PHOTOS:
        # A missing folder fails loudly (like tests/conftest.py's `street_photos`), never skips quietly.
        return [pytest.param(None, id="shared-photos-missing")]
    return [pytest.param(path, id=f"{path.parent.name}/{path.name}") for path in REAL_PHOTOS]


@pytest.fixture
def street_jpeg() -> bytes:
    path = PHOTOS / "street" / "DSCN0010.jpg"
    if not path.is_file():
        pytest.fail(MISSING)
    return path.read_bytes()


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def picture(size: tuple[int, int] = (64, 48), color: str = "orange") -> Image.Image:
    return Image.new("RGB", size, color)


def rejected(data: bytes) -> PhotoRejected:
    with pytest.raises(PhotoRejected) as caught:
        sniff_photo(data)
    return caught.value


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def handmade_png(width: int, height: int, before_idat: bytes = b"") -> bytes:
    """A valid PNG signature and IHDR claiming width×height, with a few bytes of image data."""
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    idat = png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
    return b"\x89PNG\r\n\x1a\n" + ihdr + before_idat + idat + png_chunk(b"IEND", b"")


def handmade_webp_vp8x(width: int, height: int, flags: int = 0) -> bytes:
    payload = bytes([flags, 0, 0, 0]) + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", len(payload)) + payload
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, marker, length) of each segment from SOI up to and including SOS."""
    found, pos = [], 2
    while pos + 4 <= len(data):
        assert data[pos] == 0xFF
        marker, length = data[pos + 1], struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        found.append((pos, marker, length))
        if marker == 0xDA:
            break
        pos += 2 + length
    return found


def sof_offset(data: bytes) -> int:
    return next(pos for pos, marker, _ in jpeg_segments(data) if marker in (0xC0, 0xC1, 0xC2))


def patched(data: bytes, offset: int, replacement: bytes) -> bytes:
    return data[:offset] + replacement + data[offset + len(replacement) :]


# --- accepted -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "options", "content_type", "extension"),
    [
        ("JPEG", {"quality": 85}, "image/jpeg", "jpg"),
        ("JPEG", {"progressive": True}, "image/jpeg", "jpg"),
        ("PNG", {}, "image/png", "png"),
        ("WEBP", {"quality": 80}, "image/webp", "webp"),
        ("WEBP", {"lossless": True}, "image/webp", "webp"),
        ("WEBP", {"exif": b"Exif\0\0II*\0\x08\0\0\0\0\0"}, "image/webp", "webp"),  # extended (VP8X) file
    ],
    ids=["jpeg", "jpeg-progressive", "png", "webp-lossy", "webp-lossless", "webp-extended"],
)
def test_allowed_types_are_accepted_with_their_size(fmt, options, content_type, extension):
    data = encode(picture((321, 123)), fmt, **options)

    assert sniff_photo(data) == SniffedPhoto(content_type, extension, 321, 123, len(data))


@pytest.mark.parametrize("path", real_photo_params())
def test_every_real_camera_photo_is_accepted_with_the_size_pillow_reports(path):
    if path is None:
        pytest.fail(MISSING)
    data = path.read_bytes()
    with Image.open(path) as im:
        width, height = im.size

    assert sniff_photo(data) == SniffedPhoto("image/jpeg", "jpg", width, height, len(data))


def test_a_still_saved_as_a_one_frame_animation_is_accepted():
    data = encode(picture(), "WEBP", save_all=True)

    assert sniff_photo(data).content_type == "image/webp"


def test_a_jpeg_with_extra_mpo_images_is_a_still_jpeg():
    # Phones store gain maps, depth maps and previews as extra MPF images (Pillow says "MPO", n_frames 2).
    data = encode(picture((200, 150)), "MPO", save_all=True, append_images=[picture((100, 75), "gray")])
    with Image.open(io.BytesIO(data)) as im:
        assert (im.format, im.n_frames) == ("MPO", 2)

    assert sniff_photo(data) == SniffedPhoto("image/jpeg", "jpg", 200, 150, len(data))


def test_the_result_is_a_frozen_struct(street_jpeg):
    photo = sniff_photo(street_jpeg)

    with pytest.raises(AttributeError):
        photo.width = 1  # type: ignore[misc]
    assert msgspec.json.decode(msgspec.json.encode(photo), type=SniffedPhoto) == photo


def test_pixels_are_never_decoded(monkeypatch, street_jpeg):
    def no_decoding(self):
        raise AssertionError("sniff_photo decoded pixel data")

    samples = [street_jpeg, encode(picture(), "PNG"), encode(picture(), "WEBP"), handmade_png(10_000, 10_000)]
    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    monkeypatch.setattr(Image.Image, "load", no_decoding)

    assert [sniff_photo(data).content_type for data in samples[:3]] == ["image/jpeg", "image/png", "image/webp"]
    assert rejected(samples[3]).code == "photo_too_many_pixels"


# --- type by magic bytes --------------------------------------------------------------------------------------


FOREIGN = {
    "gif": encode(picture(), "GIF"),
    "animated-gif": encode(picture(), "GIF", save_all=True, append_images=[picture(color="blue")]),
    "bmp": encode(picture(), "BMP"),
    "tiff": encode(picture(), "TIFF"),
    "ico": encode(picture((32, 32)), "ICO"),
    "pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    "html": b"<!doctype html><html><body><script>alert(1)</script></body></html>",
    "svg": b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"></svg>',
    "text": b"just some text, not a photo\n",
    "wav": b"RIFF\x24\0\0\0WAVEfmt " + b"\0" * 40,
    # pillow-heif is not installed, so HEIC is not an allowed type (DESIGN §4).
    "heic": b"\0\0\0\x18ftypheic\0\0\0\0mif1heic" + b"\0" * 64,
    "jpeg-after-a-prefix": b"GIF89a" + b"\xff\xd8\xff\xe0" + b"\0" * 64,
}


@pytest.mark.parametrize("data", list(FOREIGN.values()), ids=list(FOREIGN))
def test_other_types_are_refused_as_not_allowed(data):
    error = rejected(data)

    assert (error.status, error.code) == (415, "photo_type_not_allowed")
    assert isinstance(error.detail, str) and error.detail


def test_the_declared_type_and_name_are_irrelevant():
    # A multipart part carries a file name and a content type; sniff_photo is given neither, the bytes decide:
    # a PNG sent as "hazard.jpg, image/jpeg" is a PNG, a GIF sent the same way is refused.
    assert list(inspect.signature(sniff_photo).parameters) == ["data"]

    assert sniff_photo(encode(picture(), "PNG")).content_type == "image/png"
    assert rejected(FOREIGN["gif"]).status == 415


def test_empty_is_unreadable():
    error = rejected(b"")

    assert (error.status, error.code) == (422, "photo_unreadable")


@pytest.mark.parametrize("data", [b"\xff", b"\xff\xd8", b"\x89PNG\r\n", b"RIFF", b"RIFF\0\0\0\0WE"])
def test_bytes_ending_inside_an_allowed_magic_are_a_truncated_photo(data):
    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_unreadable")


# --- unreadable headers ---------------------------------------------------------------------------------------


def test_a_jpeg_cut_after_100_bytes_is_unreadable(street_jpeg):
    error = rejected(street_jpeg[:100])

    assert (error.status, error.code) == (422, "photo_unreadable")


@pytest.mark.parametrize(
    ("offset", "replacement"),
    [
        (0, b"\xff\x01"),  # the SOF marker is not a marker any more
        (2, b"\x00\x00"),  # segment length 0
        (2, b"\xff\xff"),  # segment length past the end of the header
        (5, b"\x00\x00\x00\x00"),  # 0×0 pixels
        (9, b"\x00"),  # no colour components
    ],
    ids=["marker", "length-0", "length-ffff", "zero-size", "no-components"],
)
def test_a_jpeg_with_a_corrupted_sof_is_unreadable(street_jpeg, offset, replacement):
    data = patched(street_jpeg, sof_offset(street_jpeg) + offset, replacement)

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_unreadable")


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8\xff" + b"garbage!" * 16,
        b"\xff\xd8\xff",
        b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        handmade_png(0, 0),
        patched(handmade_png(64, 48), 29, b"\0\0\0\0"),  # IHDR with a wrong CRC
        b"RIFF\0\0\0\0WEBPVP8 " + b"\0" * 32,
        b"RIFF\0\0\0\0WEBPJUNK" + b"\0" * 32,
        encode(picture(), "WEBP")[:40],
    ],
    ids=[
        "jpeg-garbage",
        "jpeg-magic-only",
        "png-garbage",
        "png-0x0",
        "png-bad-crc",
        "webp-vp8-zeros",
        "webp-junk",
        "webp-cut",
    ],
)
def test_right_magic_with_an_unreadable_header_is_unreadable(data):
    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_unreadable")


def test_a_format_pillow_reads_differently_from_the_magic_is_unreadable(monkeypatch):
    data = encode(picture(), "PNG")
    opened = Image.open

    def open_as_gif(fp, mode="r", formats=None):
        im = opened(fp, mode, formats)
        im.format = "GIF"
        return im

    monkeypatch.setattr(Image, "open", open_as_gif)

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_unreadable")


# --- size, pixels, frames -------------------------------------------------------------------------------------


def test_over_12_mb_is_too_large(street_jpeg):
    blob = street_jpeg[:2048] + b"\0" * (13 * 1024 * 1024)

    error = rejected(blob)

    assert (error.status, error.code) == (413, "photo_too_large")


def test_exactly_12_mb_is_allowed_and_one_byte_more_is_not(street_jpeg):
    padded = street_jpeg + b"\0" * (MAX_PHOTO_BYTES - len(street_jpeg))

    assert sniff_photo(padded).bytes == MAX_PHOTO_BYTES
    assert rejected(padded + b"\0").status == 413


def test_a_tiny_png_claiming_100_megapixels_is_refused_without_allocating():
    data = handmade_png(10_000, 10_000)
    assert len(data) < 100
    filters = list(warnings.filters)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_too_many_pixels")
    assert isinstance(error.__cause__, Image.DecompressionBombWarning)  # Pillow's warning (over 89 MP) was an error
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 50 * 1024  # 100 MP of RGB would be 300 MB
    assert warnings.filters == filters  # Pillow's bomb warning was an error only inside the call


@pytest.mark.parametrize(
    ("width", "height"), [(7072, 7072), (50_000_001, 1), (10_000, 10_000), (20_000, 20_000), (2**31 - 1, 2**31 - 1)]
)
def test_pngs_over_50_megapixels_are_refused(width, height):
    error = rejected(handmade_png(width, height))

    assert (error.status, error.code) == (422, "photo_too_many_pixels")


def test_our_pixel_limit_holds_when_pillows_is_switched_off(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)

    assert rejected(handmade_png(7072, 7072)).code == "photo_too_many_pixels"
    assert rejected(handmade_png(20_000, 20_000)).code == "photo_too_many_pixels"


def test_just_under_50_megapixels_is_allowed():
    assert MAX_PIXELS - 7071 * 7071 >= 0

    photo = sniff_photo(handmade_png(7071, 7071))

    assert (photo.content_type, photo.width, photo.height) == ("image/png", 7071, 7071)


@pytest.mark.parametrize(("width", "height"), [(16_384, 16_384), (8_000, 7_000), (16_777_216, 16)])
def test_a_webp_canvas_over_50_megapixels_is_refused_before_libwebp_allocates_it(monkeypatch, width, height):
    opened = []
    monkeypatch.setattr(Image, "open", lambda *args, **kwargs: opened.append(args))

    error = rejected(handmade_webp_vp8x(width, height))

    assert (error.status, error.code) == (422, "photo_too_many_pixels")
    assert opened == []


def test_an_animated_webp_is_refused():
    data = encode(picture(), "WEBP", save_all=True, append_images=[picture(color="blue")], duration=100)

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_animated")


def test_an_animated_png_is_refused():
    data = encode(picture(), "PNG", save_all=True, append_images=[picture(color="blue")], duration=100)

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_animated")


# --- headers built to be slow ---------------------------------------------------------------------------------

SOF_AND_SOS = (
    b"\xff\xc0\x00\x11\x08\x00\x10\x00\x10\x03\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    b"\xff\xda\x00\x0c\x03\x01\x00\x02\x11\x03\x11\x00\x3f\x00" + b"\0" * 10 + b"\xff\xd9"
)


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xd8" + b"\xff\xe1\x00\x02" * 3_000_000 + SOF_AND_SOS,  # 3 million empty APP1 segments
        b"\xff\xd8" + b"\xff" * 12_000_000 + SOF_AND_SOS,  # 12 million fill bytes
        handmade_png(100, 100, png_chunk(b"tEXt", b"k\0") * 500_000),
        handmade_png(100, 100, png_chunk(b"iCCP", b"p\0\0" + zlib.compress(b"x" * 1_000_000, 9)) * 1000),
    ],
    ids=["jpeg-segments", "jpeg-fill-bytes", "png-chunks", "png-zlib-chunks"],
)
def test_headers_built_to_be_slow_are_refused_quickly(data):
    # Pillow alone spends 3 to 30 seconds of CPU opening each of these.
    started = time.perf_counter()

    error = rejected(data)

    assert (error.status, error.code) == (422, "photo_unreadable")
    assert time.perf_counter() - started < 0.5


def test_an_ordinary_amount_of_header_is_still_read():
    jpeg = b"\xff\xd8" + b"\xff\xfe\x00\x02" * 200 + SOF_AND_SOS
    text = png_chunk(b"tEXt", b"k\0v") * 100 + png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"v")) * 4
    png = handmade_png(100, 100, text)

    assert (sniff_photo(jpeg).width, sniff_photo(png).width) == (16, 100)


# --- fuzz -----------------------------------------------------------------------------------------------------


def outcome(data: bytes) -> SniffedPhoto | PhotoRejected:
    try:
        return sniff_photo(data)
    except PhotoRejected as error:
        return error


def check_any(data: bytes) -> None:
    """Any other exception escapes outcome() and fails the test."""
    result = outcome(data)
    if isinstance(result, PhotoRejected):
        assert result.code in CODES and result.status in (413, 415, 422)
        assert 0 < len(result.detail) <= 100 and "object at" not in result.detail  # short English, no reprs
    else:
        assert result.content_type in ("image/jpeg", "image/png", "image/webp")
        assert 0 < result.width * result.height <= MAX_PIXELS and result.bytes == len(data)


def mutate(rng: random.Random, seed: bytes, start: int, end: int) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        pos = rng.randrange(start, min(end, len(data)))
        roll = rng.random()
        if roll < 0.7:
            data[pos] = rng.randrange(256)
        elif roll < 0.8:
            data[pos] = rng.choice([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF])
        elif roll < 0.9:
            del data[pos : pos + rng.randint(1, 8)]
        else:
            data[pos:pos] = rng.randbytes(rng.randint(1, 8))
    if rng.random() < 0.3:
        del data[rng.randint(0, len(data)) :]
    return bytes(data)


def test_fuzzed_real_jpeg_headers_only_ever_raise_photo_rejected(street_jpeg):
    rng = random.Random(20261126)
    sos_offset, sos_marker, sos_length = jpeg_segments(street_jpeg)[-1]
    assert sos_marker == 0xDA
    header_end = sos_offset + 2 + sos_length  # mutate every byte Pillow reads to open it, and a few past

    for _ in range(2000):
        check_any(mutate(rng, street_jpeg, 2, header_end))


def test_fuzzed_generated_headers_only_ever_raise_photo_rejected():
    rng = random.Random(7)
    seeds = [
        encode(picture(), "PNG"),
        encode(picture(), "PNG", save_all=True, append_images=[picture(color="blue")]),
        encode(picture(), "WEBP"),
        encode(picture(), "WEBP", lossless=True),
        encode(picture(), "WEBP", save_all=True, append_images=[picture(color="blue")]),
        encode(picture(), "MPO", save_all=True, append_images=[picture(color="blue")]),
    ]

    for _ in range(1500):
        seed = rng.choice(seeds)
        check_any(mutate(rng, seed, 8 if seed[:1] != b"\xff" else 2, 400))
