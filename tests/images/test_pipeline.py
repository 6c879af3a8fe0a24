"""The photo pipeline (normalise, dhash64, hamming) and its sandbox.

Real camera JPEGs come from the shared photos folder (../shared/photos/ from the project's root, see
its README): `street/` photos carry EXIF GPS and XMP, `cameras/` photos their makers' EXIF, comments
and Photoshop/Adobe segments. Everything else is generated with Pillow. Metadata is checked on the
derivatives' BYTES (JPEG segments, WebP chunks), not through Pillow's reading of them.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import time
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageCms, ImageEnhance, ImageFile, ImageStat, JpegImagePlugin

from gridrider.images import pipeline, sandbox
from gridrider.images.pipeline import (
    DISPLAY_MAX_PX,
    REUSE_MAX_HAMMING,
    THUMB_MAX_PX,
    NormalisedPhoto,
    PhotoFailed,
    dhash64,
    hamming,
    normalise,
)
from gridrider.images.sandbox import PhotoSandbox

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "photos"
CAMERA_PHOTOS = sorted(PHOTOS.glob("cameras/*.jpg"))


@pytest.fixture(scope="session")
def camera_photos() -> list[bytes]:
    if not CAMERA_PHOTOS:
        pytest.fail(f"these tests need the shared real photos at {PHOTOS / 'cameras'} (see the project README)")
    return [p.read_bytes() for p in CAMERA_PHOTOS]


@pytest.fixture(scope="session")
def real_photos(street_photos: list[bytes], camera_photos: list[bytes]) -> list[bytes]:
    return street_photos + camera_photos


# ── reading derivatives' bytes ──────────────────────────────────────────────────────────────────

_STANDALONE = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}  # SOI, EOI, TEM, RST0-7: no length field


def jpeg_segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, payload) of every marker segment, walking the entropy-coded data too."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    segments: list[tuple[int, bytes]] = [(0xD8, b"")]
    pos = 2
    while pos < len(data):
        assert data[pos] == 0xFF, f"no marker at {pos}"
        while data[pos] == 0xFF:  # fill bytes
            pos += 1
        marker = data[pos]
        pos += 1
        if marker in _STANDALONE:
            segments.append((marker, b""))
            if marker == 0xD9:
                break
            continue
        (length,) = struct.unpack(">H", data[pos : pos + 2])
        segments.append((marker, data[pos + 2 : pos + length]))
        pos += length
        if marker == 0xDA:  # SOS: skip entropy-coded data up to the next real marker
            while pos < len(data) - 1 and not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
                pos += 1
    return segments


def webp_chunks(data: bytes) -> list[bytes]:
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP", "not a WebP"
    chunks, pos = [], 12
    while pos + 8 <= len(data):
        fourcc = data[pos : pos + 4]
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        chunks.append(fourcc)
        pos += 8 + size + (size & 1)
    return chunks


# Strings that mean metadata wherever they appear (long enough never to occur by chance).
_METADATA_STRINGS = (b"Exif\x00\x00", b"ICC_PROFILE\x00", b"http://ns.adobe.com/", b"Photoshop 3.0", b"<x:xmpmeta")


def assert_no_metadata(data: bytes, *, originals_strings: tuple[bytes, ...] = ()) -> None:
    if data[:2] == b"\xff\xd8":
        for marker, payload in jpeg_segments(data):
            assert marker != 0xFE, "COM segment"
            if 0xE0 <= marker <= 0xEF:
                # Only the JFIF APP0 header may be there: no APP1 Exif/XMP, APP2 ICC, APP13 IPTC, APP14...
                assert marker == 0xE0 and payload.startswith(b"JFIF\x00"), f"APP{marker - 0xE0} {payload[:30]!r}"
    else:
        chunks = webp_chunks(data)
        assert not {b"EXIF", b"XMP ", b"ICCP"} & set(chunks), chunks
    for needle in _METADATA_STRINGS + originals_strings:
        assert needle not in data, needle
    with Image.open(io.BytesIO(data)) as image:
        assert not image.getexif()
        assert not {"exif", "icc_profile", "xmp", "comment", "photoshop", "XML:com.adobe.xmp"} & set(image.info)


def identifying_strings(data: bytes) -> tuple[bytes, ...]:
    """Camera make, model, software and comment of an original: none may reach a derivative."""
    with Image.open(io.BytesIO(data)) as image:
        exif = image.getexif()
        values = [exif.get(tag) for tag in (0x010F, 0x0110, 0x0131)] + [image.info.get("comment")]
    found = []
    for value in values:
        text = value.encode("latin-1", "replace") if isinstance(value, str) else value
        if text and len(text.strip(b"\x00 ")) >= 5:
            found.append(text.strip(b"\x00 "))
    return tuple(found)


def jpeg_bytes(image: Image.Image, quality: int = 90, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, **params)
    return out.getvalue()


def png_bytes(image: Image.Image, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", **params)
    return out.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size
    sum2 = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).sum2
    mse = sum(sum2) / (3 * a.width * a.height)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def gps_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "Hazardcam Industries"  # Make
    exif[0x0110] = "Rider Model 9000"  # Model
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"
    gps[2] = (42.0, 1.0, 2.5)
    gps[3] = "E"
    gps[4] = (121.0, 40.0, 3.25)
    return exif


XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:GPSLatitude="42,1.5N"/>'
    b"</rdf:RDF></x:xmpmeta>"
)
SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ── metadata ────────────────────────────────────────────────────────────────────────────────────


def test_real_photos_lose_all_metadata(street_photos: list[bytes], camera_photos: list[bytes]) -> None:
    with Image.open(io.BytesIO(street_photos[0])) as first:
        assert first.getexif().get_ifd(0x8825), "the street photos are expected to carry EXIF GPS"
    for data in street_photos + camera_photos:
        result = normalise(data)
        strings = identifying_strings(data)
        assert_no_metadata(result.display, originals_strings=strings)
        assert_no_metadata(result.thumb, originals_strings=strings)


def test_generated_jpeg_with_comment_icc_xmp_and_gps_loses_them() -> None:
    image = Image.linear_gradient("L").convert("RGB").resize((900, 600))
    data = jpeg_bytes(image, comment=b"rider 4711 was here", icc_profile=SRGB_ICC, xmp=XMP, exif=gps_exif())
    segments = jpeg_segments(data)
    assert any(m == 0xFE for m, _ in segments) and any(p.startswith(b"ICC_PROFILE") for _, p in segments)
    assert any(p.startswith(b"http://ns.adobe.com/xap/1.0/") for _, p in segments)
    assert any(p.startswith(b"Exif\x00\x00") for _, p in segments)

    result = normalise(data)
    for out in (result.display, result.thumb):
        assert_no_metadata(out, originals_strings=(b"rider 4711", b"Hazardcam", b"Rider Model"))


def test_a_photo_that_keeps_its_size_still_loses_its_comment() -> None:
    # Nothing to resize or transpose: the easiest way for the original's info to slip through.
    image = Image.new("RGB", (640, 480), (200, 120, 40))
    data = jpeg_bytes(image, comment=b"kept by Pillow unless rebuilt", exif=gps_exif())
    result = normalise(data)
    assert (result.width, result.height) == (640, 480)
    assert_no_metadata(result.display, originals_strings=(b"kept by Pillow",))


@pytest.mark.parametrize(
    ("size", "orientation"),
    [((1600, 1200), 1), ((1600, 1200), 6), ((4000, 3000), 1), ((4000, 3000), 8), ((640, 480), 3)],
)
def test_display_pixels_are_a_plain_image_that_carries_nothing(size: tuple[int, int], orientation: int) -> None:
    # Kept at its size, only turned, only resized, both: each path ends in the rebuild.
    exif = gps_exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(Image.new("RGB", size, (200, 120, 40)), comment=b"rider 4711", icc_profile=SRGB_ICC, exif=exif)
    pixels = pipeline._display_pixels(data)
    assert type(pixels) is Image.Image, type(pixels)  # not the JPEG plugin's class, with its app segments
    assert pixels.info == {} and pixels.mode == "RGB"


def test_display_pixels_spread_over_several_blocks_are_copied_the_same() -> None:
    """The rebuild shares the pixels when Pillow stores them in one block and copies them otherwise."""
    data = jpeg_bytes(Image.linear_gradient("L").convert("RGB").resize((1600, 1200)), comment=b"rider 4711")
    shared = normalise(data)
    block_size = Image.core.get_block_size()
    Image.core.set_block_size(1 << 20)  # 1600x1200 RGB is 7.7 MB: eight blocks, no zero-copy export
    try:
        with pytest.raises(ValueError, match="not contiguous"):
            Image.fromarrow(Image.new("RGB", (1600, 1200)), "RGB", (1600, 1200))
        copied = normalise(data)
    finally:
        Image.core.set_block_size(block_size)
    assert copied == shared
    assert_no_metadata(copied.display, originals_strings=(b"rider 4711",))


def test_png_and_webp_inputs_lose_their_metadata() -> None:
    from PIL import PngImagePlugin

    image = Image.new("RGB", (300, 200), (10, 200, 30))
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "rider 4711 png")
    text.add_itxt("XML:com.adobe.xmp", XMP.decode(), zip=True)
    png = png_bytes(image, pnginfo=text, icc_profile=SRGB_ICC, exif=gps_exif())
    webp_out = io.BytesIO()
    image.save(webp_out, "WEBP", icc_profile=SRGB_ICC, exif=gps_exif(), xmp=XMP)
    webp = webp_out.getvalue()
    assert {b"EXIF", b"ICCP", b"XMP "} <= set(webp_chunks(webp))
    for data in (png, webp):
        result = normalise(data)
        assert_no_metadata(result.display, originals_strings=(b"rider 4711", b"Hazardcam"))
        assert_no_metadata(result.thumb, originals_strings=(b"rider 4711", b"Hazardcam"))


def test_byte_scanners_see_metadata() -> None:
    """The checks above would fail on metadata (so their passing means something)."""
    image = Image.new("RGB", (64, 64), "white")
    for params in ({"comment": b"c"}, {"icc_profile": SRGB_ICC}, {"xmp": XMP}, {"exif": gps_exif()}):
        with pytest.raises(AssertionError):
            assert_no_metadata(jpeg_bytes(image, **params))
    out = io.BytesIO()
    image.save(out, "WEBP", exif=gps_exif())
    with pytest.raises(AssertionError):
        assert_no_metadata(out.getvalue())


# ── orientation ─────────────────────────────────────────────────────────────────────────────────

QUADRANTS = {
    "top_left": (255, 0, 0),
    "top_right": (0, 200, 0),
    "bottom_left": (0, 0, 255),
    "bottom_right": (255, 255, 255),
}


def upright(width: int, height: int) -> Image.Image:
    image = Image.new("RGB", (width, height), QUADRANTS["bottom_right"])
    w2, h2 = width // 2, height // 2
    image.paste(QUADRANTS["top_left"], (0, 0, w2, h2))
    image.paste(QUADRANTS["top_right"], (w2, 0, width, h2))
    image.paste(QUADRANTS["bottom_left"], (0, h2, w2, height))
    return image


def stored_as(orientation: int, up: Image.Image) -> Image.Image:
    """The pixels a camera stores for the upright view `up` under EXIF `orientation`.

    Straight from the EXIF definition (where the stored 0th row and 0th column are in the upright
    view), pixel by pixel, so the test does not share the implementation's transposition table.
    """
    w, h = up.size
    source = {
        # stored (x, y) -> upright (x, y)
        1: lambda x, y: (x, y),  # row 0 top, column 0 left
        2: lambda x, y: (w - 1 - x, y),  # row 0 top, column 0 right
        3: lambda x, y: (w - 1 - x, h - 1 - y),  # row 0 bottom, column 0 right
        4: lambda x, y: (x, h - 1 - y),  # row 0 bottom, column 0 left
        5: lambda x, y: (y, x),  # row 0 left, column 0 top
        6: lambda x, y: (w - 1 - y, x),  # row 0 right, column 0 top
        7: lambda x, y: (w - 1 - y, h - 1 - x),  # row 0 right, column 0 bottom
        8: lambda x, y: (y, h - 1 - x),  # row 0 left, column 0 bottom
    }[orientation]
    size = (w, h) if orientation <= 4 else (h, w)
    stored = Image.new("RGB", size)
    src, dst = up.load(), stored.load()
    for y in range(size[1]):
        for x in range(size[0]):
            dst[x, y] = src[source(x, y)]
    return stored


def assert_upright(image: Image.Image, size: tuple[int, int]) -> None:
    assert image.size == size
    w, h = image.size
    probes = {"top_left": (w // 4, h // 4), "top_right": (3 * w // 4, h // 4)}
    probes |= {"bottom_left": (w // 4, 3 * h // 4), "bottom_right": (3 * w // 4, 3 * h // 4)}
    for name, xy in probes.items():
        got = image.getpixel(xy)
        assert all(abs(a - b) <= 40 for a, b in zip(got, QUADRANTS[name], strict=True)), (name, got)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize(("width", "height"), [(200, 100), (100, 200)])
def test_exif_orientation_small(orientation: int, width: int, height: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = jpeg_bytes(stored_as(orientation, upright(width, height)), quality=95, exif=exif)
    result = normalise(data)
    assert (result.width, result.height) == (width, height)
    assert_upright(decoded(result.display), (width, height))
    assert_upright(decoded(result.thumb), (width, height))  # already under THUMB_MAX_PX


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_large_is_drafted_resized_and_turned(orientation: int) -> None:
    # 4000x2400 upright: stored as 2400x4000 for 5-8. Display 1600x960, thumb 320x192, both upright.
    small = stored_as(orientation, upright(400, 240))
    stored = small.resize((small.width * 10, small.height * 10), Image.Resampling.NEAREST)
    exif = Image.Exif()
    exif[0x0112] = orientation
    result = normalise(jpeg_bytes(stored, quality=90, exif=exif))
    assert (result.width, result.height) == (1600, 960)
    assert_upright(decoded(result.display), (1600, 960))
    assert_upright(decoded(result.thumb), (320, 192))


# ── sizes and quality ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("size", "display", "thumb"),
    [
        ((4000, 3000), (1600, 1200), (320, 240)),
        ((3000, 4000), (1200, 1600), (240, 320)),
        ((1600, 1200), (1600, 1200), (320, 240)),
        ((1000, 3000), (533, 1600), (107, 320)),
        ((1601, 10), (1600, 10), (320, 2)),
        ((640, 480), (640, 480), (320, 240)),
        ((300, 200), (300, 200), (300, 200)),  # never upscaled
        ((1, 1), (1, 1), (1, 1)),
    ],
)
def test_sizes(size: tuple[int, int], display: tuple[int, int], thumb: tuple[int, int]) -> None:
    image = Image.linear_gradient("L").convert("RGB").resize(size)
    result = normalise(jpeg_bytes(image))
    assert (result.width, result.height) == display
    assert decoded(result.display).size == display
    assert decoded(result.thumb).size == thumb
    assert result.display_type == "image/jpeg" and result.display[:3] == b"\xff\xd8\xff"
    assert result.thumb[:3] == b"\xff\xd8\xff"


def test_real_photo_sizes(real_photos: list[bytes]) -> None:
    for data in real_photos:
        with Image.open(io.BytesIO(data)) as original:
            size = original.size  # all these are orientation 1 or none, and under 1600 px
        result = normalise(data)
        assert (result.width, result.height) == size
        thumb = decoded(result.thumb)
        assert max(thumb.size) == THUMB_MAX_PX
        assert max(result.width, result.height) <= DISPLAY_MAX_PX


def test_12mp_display_psnr_against_full_decode_lanczos(street_photos: list[bytes]) -> None:
    phone = jpeg_bytes(decoded(street_photos[0]).resize((4000, 3000), Image.Resampling.LANCZOS), quality=92)
    with Image.open(io.BytesIO(phone)) as full:
        full.load()  # no draft: every DCT coefficient
        reference = full.convert("RGB").resize((1600, 1200), Image.Resampling.LANCZOS)
    result = normalise(phone)
    assert (result.width, result.height) == (1600, 1200)
    assert psnr(decoded(result.display), reference) >= 35.0


def test_draft_decoding_is_used_for_large_jpegs(monkeypatch: pytest.MonkeyPatch) -> None:
    """The box asked of draft() must be the display size, or libjpeg decodes at full scale."""
    drafts: list[tuple[tuple[int, int], tuple[int, int] | None]] = []
    real_draft = JpegImagePlugin.JpegImageFile.draft

    def spy(self: Image.Image, mode: str | None, size: tuple[int, int] | None) -> object:
        result = real_draft(self, mode, size)
        drafts.append((self.size, size))
        return result

    monkeypatch.setattr(JpegImagePlugin.JpegImageFile, "draft", spy)
    for orientation, stored in ((1, (4000, 3000)), (6, (3000, 4000))):
        exif = Image.Exif()
        exif[0x0112] = orientation
        drafts.clear()
        result = normalise(jpeg_bytes(Image.new("RGB", stored, "grey"), exif=exif))
        # Scaled by 1/2 (2000x1500 or 1500x2000), the largest DCT scale that still covers 1600x1200.
        assert drafts == [((stored[0] // 2, stored[1] // 2), (stored[0] * 2 // 5, stored[1] * 2 // 5))]
        assert (result.width, result.height) == (1600, 1200)  # 6 turns the stored portrait to landscape


# ── modes ───────────────────────────────────────────────────────────────────────────────────────


def test_rgba_png_is_composited_on_white() -> None:
    image = Image.new("RGBA", (200, 100), (0, 0, 0, 0))  # transparent black: must become white
    image.paste((255, 0, 0, 128), (100, 0, 200, 100))  # half-transparent red: pink on white
    display = decoded(normalise(png_bytes(image)).display)
    assert all(v >= 245 for v in display.getpixel((50, 50)))
    r, g, b = display.getpixel((150, 50))
    assert r >= 245 and 110 <= g <= 145 and 110 <= b <= 145


def test_palette_png_with_transparency_la_and_16_bit_grey() -> None:
    palette = Image.new("P", (120, 80), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (60, 0, 120, 80))
    p_display = decoded(normalise(png_bytes(palette, transparency=0)).display)
    assert all(v >= 245 for v in p_display.getpixel((30, 40)))  # transparent index: white
    assert p_display.getpixel((90, 40))[2] >= 230 and p_display.getpixel((90, 40))[0] <= 25  # blue

    la = Image.new("LA", (100, 100), (0, 0))
    la.paste((0, 255), (0, 0, 50, 100))
    la_display = decoded(normalise(png_bytes(la)).display)
    assert max(la_display.getpixel((25, 50))) <= 15 and min(la_display.getpixel((75, 50))) >= 245

    grey16 = Image.new("I;16", (100, 100), 32768)  # mid-grey in 16 bits, not white
    data = png_bytes(grey16)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode.startswith("I")
    value = decoded(normalise(data).display).getpixel((50, 50))
    assert all(120 <= v <= 136 for v in value), value


def test_cmyk_jpeg_and_grey_jpeg_and_rgba_webp() -> None:
    cmyk = Image.new("CMYK", (200, 100), (0, 255, 255, 0))  # red
    data = jpeg_bytes(cmyk)
    with Image.open(io.BytesIO(data)) as check:
        assert check.mode == "CMYK"
    r, g, b = decoded(normalise(data).display).getpixel((100, 50))
    assert r >= 220 and g <= 40 and b <= 40

    grey = normalise(jpeg_bytes(Image.new("L", (200, 100), 90)))
    assert decoded(grey.display).mode == "RGB"

    webp = io.BytesIO()
    Image.new("RGBA", (200, 100), (0, 0, 255, 0)).save(webp, "WEBP", lossless=True)
    assert all(v >= 245 for v in decoded(normalise(webp.getvalue()).display).getpixel((100, 50)))


# ── refusals ────────────────────────────────────────────────────────────────────────────────────


def _png_header_only(width: int, height: int, mode_bits: bytes = b"\x08\x02") -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">II", width, height) + mode_bits + b"\x00\x00\x00"
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (100_000, 100_000),  # Pillow's own bomb error (> 2x MAX_IMAGE_PIXELS)
        (10_000, 9_500),  # 95 MP: Pillow's bomb *warning*, which must be an error
        (8_000, 7_500),  # 60 MP: under Pillow's limit, over ours (50 MP)
    ],
)
def test_decompression_bomb_headers_are_refused(width: int, height: int) -> None:
    with pytest.raises(PhotoFailed) as failed:
        normalise(_png_header_only(width, height))
    assert failed.value.reason == "too_many_pixels"


def test_highly_compressible_60_mp_png_is_refused_before_decoding() -> None:
    data = png_bytes(Image.new("1", (8000, 7500), 0), optimize=True)  # 60 MP in a few kB
    assert len(data) < 200_000
    began = time.process_time()
    with pytest.raises(PhotoFailed) as failed:
        normalise(data)
    assert failed.value.reason == "too_many_pixels"
    assert time.process_time() - began < 0.5


def test_jpeg_claiming_huge_dimensions_is_refused(street_photos: list[bytes]) -> None:
    data = bytearray(street_photos[0])
    sof = _main_sof_offset(bytes(data))  # not the SOF of the thumbnail inside the EXIF segment
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)  # height, width
    with pytest.raises(PhotoFailed) as failed:
        normalise(bytes(data))
    assert failed.value.reason == "too_many_pixels"


def _main_sof_offset(data: bytes) -> int:
    pos = 2
    while True:
        marker = data[pos + 1]
        if marker in (0xC0, 0xC1, 0xC2):
            return pos
        pos += 2 + struct.unpack(">H", data[pos + 2 : pos + 4])[0]


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.9, 0.999])
def test_truncated_jpeg_fails(street_photos: list[bytes], fraction: float) -> None:
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = street_photos[1]
    with pytest.raises(PhotoFailed) as failed:
        normalise(data[: int(len(data) * fraction)])
    assert failed.value.reason in ("truncated", "undecodable")


def test_truncated_large_jpeg_fails_in_draft_mode() -> None:
    data = jpeg_bytes(Image.linear_gradient("L").convert("RGB").resize((4000, 3000)))
    with pytest.raises(PhotoFailed) as failed:
        normalise(data[: len(data) * 2 // 3])
    assert failed.value.reason == "truncated"


def test_load_truncated_images_set_globally_is_a_programming_error(
    monkeypatch: pytest.MonkeyPatch, street_photos: list[bytes]
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        normalise(street_photos[0][:5000])


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", b"\xff\xd8\xff\xe0" + b"\x00" * 100, b"GIF89a" + b"\x00" * 100, b"\x89PNG\r\n\x1a\n"],
)
def test_garbage_is_undecodable(data: bytes) -> None:
    with pytest.raises(PhotoFailed) as failed:
        normalise(data)
    assert failed.value.reason in ("undecodable", "truncated")


def test_gif_is_not_accepted_even_when_valid() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 10)).save(out, "GIF")
    with pytest.raises(PhotoFailed) as failed:
        normalise(out.getvalue())
    assert failed.value.reason == "undecodable"


def test_photo_failed_pickles_with_its_reason() -> None:
    import pickle

    copy = pickle.loads(pickle.dumps(PhotoFailed("timeout", "over 1 s")))
    assert (copy.reason, copy.detail, str(copy)) == ("timeout", "over 1 s", "timeout: over 1 s")


# ── dHash ───────────────────────────────────────────────────────────────────────────────────────


def test_dhash_same_pixels_same_hash(real_photos: list[bytes]) -> None:
    for data in real_photos[:6]:
        pixels = decoded(data)
        as_png = normalise(png_bytes(pixels))
        again = normalise(png_bytes(pixels.copy()))
        assert as_png.dhash == again.dhash == normalise(data).dhash  # under 1600 px: the same pixels
        assert normalise(data).dhash == normalise(data).dhash
        assert dhash64(pixels) == dhash64(pixels.copy())
        display = decoded(as_png.display)
        assert dhash64(display) == dhash64(pipeline._thumbnail(display))  # hashed as its thumbnail


def test_dhash_is_a_signed_int64(real_photos: list[bytes]) -> None:
    hashes = [normalise(data).dhash for data in real_photos]
    assert all(-(2**63) <= h < 2**63 for h in hashes)
    assert any(h < 0 for h in hashes) and any(h > 0 for h in hashes)
    assert len(set(hashes)) == len(hashes)
    assert hamming(-1, 0) == 64 and hamming(-(2**63), 2**63 - 1) == 64 and hamming(5, 5) == 0
    assert hamming(-1, (1 << 64) - 1) == 0  # the same 64-bit pattern, signed or not


def test_dhash_small_distance_for_resized_and_recompressed_variants(street_photos: list[bytes]) -> None:
    for data in street_photos:
        original = normalise(data).dhash
        pixels = decoded(data)
        for variant in (
            jpeg_bytes(pixels.resize((1600, 1200), Image.Resampling.LANCZOS)),
            jpeg_bytes(pixels.resize((320, 240), Image.Resampling.LANCZOS)),
            jpeg_bytes(pixels, quality=40),
            jpeg_bytes(ImageEnhance.Brightness(pixels).enhance(0.9)),
        ):
            assert hamming(original, normalise(variant).dhash) <= 4


def test_dhash_tells_a_turned_photo_apart(street_photos: list[bytes]) -> None:
    pixels = decoded(street_photos[0])
    turned = pixels.transpose(Image.Transpose.ROTATE_180)
    assert hamming(dhash64(pixels), dhash64(turned)) > REUSE_MAX_HAMMING


# ── sandbox ─────────────────────────────────────────────────────────────────────────────────────


async def test_sandbox_normalises_like_in_process(street_photos: list[bytes]) -> None:
    box = PhotoSandbox()
    try:
        result = await box.normalise(street_photos[0])
        assert isinstance(result, NormalisedPhoto)
        assert result == normalise(street_photos[0])
        with pytest.raises(PhotoFailed) as failed:
            await box.normalise(b"not a photo")
        assert failed.value.reason == "undecodable"
        assert (await box.normalise(street_photos[1])).width == 640
        assert box.lanes_started == 1  # a photo's own failure does not cost a new process
    finally:
        await box.close()


async def test_sandbox_survives_a_crashing_decoder(street_photos: list[bytes]) -> None:
    box = PhotoSandbox()
    try:
        await box.start()
        with pytest.raises(PhotoFailed) as failed:
            await box.run(sandbox._crash_for_tests, b"")
        assert failed.value.reason == "decoder_crashed"
        assert (await box.normalise(street_photos[0])).dhash == normalise(street_photos[0]).dhash
        assert box.lanes_started == 2
    finally:
        await box.close()


async def test_sandbox_survives_a_memory_hog(street_photos: list[bytes]) -> None:
    box = PhotoSandbox(memory_mb=512)
    try:
        with pytest.raises(PhotoFailed) as failed:
            await box.run(sandbox._allocate_for_tests, b"")
        assert failed.value.reason in ("out_of_memory", "decoder_crashed")
        assert (await box.normalise(street_photos[0])).width == 640
    finally:
        await box.close()


async def test_sandbox_times_out_a_spinning_child_and_carries_on(street_photos: list[bytes]) -> None:
    box = PhotoSandbox(timeout_s=1)
    try:
        await box.start()
        began = time.perf_counter()
        with pytest.raises(PhotoFailed) as failed:
            await box.run(sandbox._spin_for_tests, b"")
        assert failed.value.reason == "timeout"
        assert time.perf_counter() - began < 3
        assert (await box.normalise(street_photos[0])).width == 640
    finally:
        await box.close()


async def test_sandbox_cpu_limit_ends_a_spinning_child(street_photos: list[bytes]) -> None:
    box = PhotoSandbox(cpu_seconds=1, timeout_s=20)
    try:
        for _ in range(2):  # the limit is per call, not per process life
            with pytest.raises(PhotoFailed) as failed:
                await box.run(sandbox._spin_for_tests, b"")
            assert failed.value.reason == "cpu_limit"
        assert (await box.normalise(street_photos[0])).width == 640
        assert box.lanes_started == 1
    finally:
        await box.close()


async def test_a_crash_in_one_lane_does_not_fail_the_photo_in_another(street_photos: list[bytes]) -> None:
    box = PhotoSandbox(workers=2)
    try:
        await box.start()
        results = await asyncio.gather(
            box.run(sandbox._crash_for_tests, b""),
            *(box.normalise(data) for data in street_photos[:4]),
            return_exceptions=True,
        )
        assert isinstance(results[0], PhotoFailed) and results[0].reason == "decoder_crashed"
        assert all(isinstance(r, NormalisedPhoto) for r in results[1:]), results
    finally:
        await box.close()


async def test_closed_sandbox_refuses_work() -> None:
    box = PhotoSandbox()
    await box.close()
    with pytest.raises(sandbox.SandboxUnavailable):
        await box.normalise(b"")


async def test_a_cancelled_call_kills_its_child_and_the_next_photo_gets_a_fresh_one(street_photos: list[bytes]) -> None:
    box = PhotoSandbox(timeout_s=30)
    try:
        await box.start()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(box.run(sandbox._spin_for_tests, b""), 0.5)
        began = time.perf_counter()
        assert (await box.normalise(street_photos[0])).width == 640
        assert time.perf_counter() - began < 10  # not queued behind the spinning child
        assert box.lanes_started == 2
    finally:
        await box.close()


async def test_closing_during_a_call_is_not_the_photos_fault() -> None:
    box = PhotoSandbox()
    await box.start()
    call = asyncio.ensure_future(box.run(sandbox._spin_for_tests, b""))
    await asyncio.sleep(0.3)
    await box.close()
    with pytest.raises(sandbox.SandboxUnavailable):
        await call
