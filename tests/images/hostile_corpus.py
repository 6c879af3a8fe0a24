"""A generated corpus of hostile photos (issue 12, "Hostile inputs: Photos"), built in memory on demand.

Nothing here is a committed binary: every item is made from a few lines of Pillow, zlib or hand-laid
bytes, so what each one attacks is readable and reproducible. (Crash inputs that the fuzzer finds are
the exception: they are kept as files under tests/images/regressions/, see test_fuzz_photos.py.)

Each item says what it attacks, what intake (`sniff_photo` behind POST /api/v1/reports) may answer,
what the worker's `normalise` (in its sandbox) may end with, and which byte strings it smuggles in that
no derivative may carry. The allowed outcomes were written from the rules (DESIGN §4, §8) and then
checked against what the code does; where more than one outcome is fine, the comment says why.
"""

from __future__ import annotations

import functools
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from PIL import Image

from tests.images.test_pipeline import assert_no_metadata, jpeg_bytes, png_bytes, upright
from tests.images.test_sniff import encode, handmade_png, handmade_webp_vp8x, patched, png_chunk, sof_offset

ACCEPTED = "accepted"  # intake answered 201
READY = "ready"  # the worker made a derivative

# What may appear in a derivative of any item: nothing that was smuggled in, in any item.
SCRIPT = b"<script"
ZIP_LOCAL_HEADER = b"PK\x03\x04"
ZIP_END = b"PK\x05\x06"
EXIF_MARK = b"HOSTILE-EXIF-MARK"
ICC_MARK = b"HOSTILE-ICC-MARK"
XMP_MARK = b"HOSTILE-XMP-MARK"
COMMENT_MARK = b"HOSTILE-COMMENT-MARK"
TEXT_MARK = b"HOSTILE-TEXT-MARK"
EVERY_PAYLOAD = (SCRIPT, ZIP_LOCAL_HEADER, ZIP_END, EXIF_MARK, ICC_MARK, XMP_MARK, COMMENT_MARK, TEXT_MARK)

# Larger than this an item does not seed the fuzzer, nor does one that takes 0.1-5 s to normalise
# (`seed=False`): libFuzzer spends most runs near its seeds, and 20,000 runs must fit the CI bound.
FUZZ_SEED_MAX_BYTES = 70_000


@dataclass(frozen=True)
class Hostile:
    name: str  # family/what, used as the test id
    data: bytes
    intake: frozenset[str]  # ACCEPTED or the machine codes the API may answer with
    worker: frozenset[str]  # READY or the PhotoFailed reasons the worker may end with
    filename: str = "photo.jpg"  # what the upload claims to be: never believed
    content_type: str = "image/jpeg"
    seed: bool = True  # small and quick: a fuzzing seed
    why: str = field(default="", compare=False)


def _as_set(value: Iterable[str] | str) -> frozenset[str]:
    return frozenset([value]) if isinstance(value, str) else frozenset(value)


def _item(name: str, data: bytes, intake: Iterable[str] | str, worker: Iterable[str] | str,
          **kwargs: object) -> Hostile:
    seed = kwargs.pop("seed", len(data) <= FUZZ_SEED_MAX_BYTES)
    return Hostile(name, data, _as_set(intake), _as_set(worker), seed=bool(seed), **kwargs)  # type: ignore[arg-type]


# What Pillow's JPEG reader reports for a file that has only the JFIF header we allow.
_JFIF_INFO = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi"}


def assert_clean_derivative(data: bytes, max_px: int) -> None:
    """A display or thumbnail JPEG that carries pixels and a JFIF header, nothing of the original."""
    assert data.startswith(b"\xff\xd8\xff") and data.endswith(b"\xff\xd9"), "not one whole JPEG"
    assert data.count(b"\xff\xd9") == 1, "bytes after the image's EOI"  # cannot occur in scan data
    assert_no_metadata(data, originals_strings=EVERY_PAYLOAD)  # segments, metadata strings, Pillow's view
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG" and image.mode == "RGB", (image.format, image.mode)
        assert 0 < max(image.size) <= max_px, image.size
        assert set(image.info) <= _JFIF_INFO, sorted(image.info)
        image.load()  # the derivative itself decodes


# ── small builders (what test_sniff/test_pipeline do not have already) ─────────────────────────────


def scene(width: int = 96, height: int = 64) -> Image.Image:
    """The four coloured quadrants of test_pipeline, with a gradient so the JPEG has real entropy data."""
    image = upright(width, height)
    gradient = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image.getchannel("R"), gradient, image.getchannel("B")))


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    assert len(payload) <= 65533, "a JPEG segment's length field is 16 bits, itself included"
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    sof = sof_offset(jpeg)
    return patched(jpeg, sof + 5, struct.pack(">HH", height, width))


def png_of(width: int, height: int, depth: int, colour: int, idat: bytes, *, extra: bytes = b"") -> bytes:
    ihdr = png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + ihdr + extra + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def zlib_zeros(count: int, block: int = 1 << 20) -> bytes:
    """zlib data inflating to `count` zero bytes, made in milliseconds rather than seconds.

    zlib deflates only ~100 MB/s even of zeros, and the bombs here are 100-200 MB. After a full flush
    the compressor forgets its history, so every further 1 MB block of zeros compresses to the same
    bytes: compress one, repeat it, and write the Adler-32 of n zeros ((n mod 65521) << 16 | 1) ourselves.
    """
    compressor = zlib.compressobj(9)
    head = compressor.compress(b"\x00" * block) + compressor.flush(zlib.Z_FULL_FLUSH)
    steady = compressor.compress(b"\x00" * block) + compressor.flush(zlib.Z_FULL_FLUSH)
    whole, rest = divmod(count, block)
    if whole == 0:
        return zlib.compress(b"\x00" * count, 9)
    tail = compressor.compress(b"\x00" * rest) + compressor.flush(zlib.Z_FINISH)
    data = head + steady * (whole - 1) + tail[:-4] + struct.pack(">I", ((count % 65521) << 16) | 1)
    return data


def zeros_png(width: int, height: int, depth: int = 8, colour: int = 2, **kwargs: bytes) -> bytes:
    """A valid PNG of black (or zero-grey) pixels, every row there: filter 0 and zero samples."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    row = 1 + -(-width * depth * channels // 8)
    return png_of(width, height, depth, colour, zlib_zeros(row * height), **kwargs)


def sixteen_bit_png(colour: int, channels: int, width: int = 48, height: int = 32) -> bytes:
    def rows() -> Iterator[bytes]:
        for y in range(height):
            samples = b"".join(struct.pack(">H", (x * 1361 + y * 977 + c * 20011) & 0xFFFF)
                               for x in range(width) for c in range(channels))
            yield b"\x00" + samples

    return png_of(width, height, 16, colour, zlib.compress(b"".join(rows()), 9))


def tiff_ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """One little-endian IFD: (tag, type, count, 4 bytes of value or offset) entries, then the next offset."""
    body = struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\x00")[:4]
    return body + struct.pack("<I", next_ifd)


def exif_app1(tiff: bytes) -> bytes:
    return jpeg_segment(0xE1, b"Exif\x00\x00" + tiff)


_SHORT, _LONG, _ASCII, _RATIONAL, _UNDEFINED, _SSHORT = 3, 4, 2, 5, 7, 8


def orientation_exif(kind: int, count: int, value: bytes, extra: bytes = b"") -> bytes:
    """A TIFF block (no Exif\\0\\0 header) whose IFD0 has only an Orientation entry as given."""
    return b"II*\x00" + struct.pack("<I", 8) + tiff_ifd([(0x0112, kind, count, value)]) + extra


def huge_exif_tiff(total: int) -> bytes:
    """IFD0 with Make, a long ASCII value filling the segment, and a marker string to look for."""
    header = b"II*\x00" + struct.pack("<I", 8)
    ifd_size = 2 + 12 * 2 + 4
    text_offset = 8 + ifd_size
    text_len = total - text_offset
    text = (EXIF_MARK + b" " + b"A" * text_len)[: text_len - 1] + b"\x00"
    ifd = tiff_ifd([(0x010F, _ASCII, text_len, struct.pack("<I", text_offset)),
                    (0x0112, _SHORT, 1, struct.pack("<H", 1))])
    return header + ifd + text


def nested_exif_tiff() -> bytes:
    """IFD0 → Exif IFD → Interop IFD → back to IFD0, a GPS IFD pointing at itself, IFD1 chained to IFD0."""
    ifd0_at, exif_at, interop_at, gps_at = 8, 100, 200, 300
    ifd0 = tiff_ifd([(0x010F, _ASCII, 18, struct.pack("<I", 400)), (0x0112, _SHORT, 1, struct.pack("<H", 6)),
                     (0x8769, _LONG, 1, struct.pack("<I", exif_at)), (0x8825, _LONG, 1, struct.pack("<I", gps_at))],
                    next_ifd=ifd0_at)  # IFD1 is IFD0 again: a loop in the chain of images
    exif = tiff_ifd([(0xA005, _LONG, 1, struct.pack("<I", interop_at)), (0x8769, _LONG, 1, struct.pack("<I", exif_at))])
    interop = tiff_ifd([(0x0001, _ASCII, 4, b"R98\x00"), (0xA005, _LONG, 1, struct.pack("<I", ifd0_at))])
    gps = tiff_ifd([(0x8825, _LONG, 1, struct.pack("<I", gps_at)), (0x0001, _ASCII, 2, b"N\x00")])
    blob = bytearray(b"II*\x00" + struct.pack("<I", ifd0_at)).ljust(500, b"\x00")
    for offset, part in ((ifd0_at, ifd0), (exif_at, exif), (interop_at, interop), (gps_at, gps)):
        blob[offset : offset + len(part)] = part
    blob[400:418] = EXIF_MARK + b"\x00"
    return bytes(blob)


def bogus_offsets_exif_tiff() -> bytes:
    """Entries whose values lie far past the end, counts that would need gigabytes, an IFD1 past the end."""
    entries = [
        (0x010F, _ASCII, 0x7FFFFFFF, struct.pack("<I", 0xFFFFFFF0)),  # Make: 2 GB at 4 GB
        (0x0110, _UNDEFINED, 0xFFFFFFFF, struct.pack("<I", 8)),  # Model: 4 GB of itself
        (0x0112, _SHORT, 0x3FFFFFFF, struct.pack("<I", 0xFFFF)),  # Orientation: a billion SHORTs
        (0x8769, _LONG, 1, struct.pack("<I", 0xFFFFFFFF)),  # Exif IFD at 4 GB
        (0x8825, _LONG, 1, struct.pack("<I", 3)),  # GPS IFD inside the header
        (0x011A, _RATIONAL, 1, struct.pack("<I", 0x10)),  # XResolution overlapping the IFD itself
        (0xFFFF, 0xFFFF, 1, b"\xff" * 4),  # unknown tag of an unknown type
    ]
    return b"II*\x00" + struct.pack("<I", 8) + tiff_ifd(entries, next_ifd=0xFFFFFFF8) + EXIF_MARK


def icc_app2(profile: bytes, *, seq: int, count: int) -> bytes:
    return jpeg_segment(0xE2, b"ICC_PROFILE\x00" + bytes([seq, count]) + profile)


def deep_icc_profile(tags: int = 4000) -> bytes:
    """An ICC header with a tag table of thousands of entries, each pointing at the next entry's bytes."""
    table = b"".join(struct.pack(">4sII", b"desc", 132 + 12 * (i + 1), 0xFFFFFFFF) for i in range(tags))
    size = 128 + 4 + len(table) + len(ICC_MARK)
    header = struct.pack(">I4sI", size, b"lcms", 0x04300000) + b"mntrRGB XYZ " + b"\x00" * 12 + b"acspAPPL"
    header = header.ljust(128, b"\x00")
    return header + struct.pack(">I", 0xFFFFFFFF) + table + ICC_MARK


def webp_chunk(fourcc: bytes, payload: bytes) -> bytes:
    return fourcc + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) & 1 else b"")


def riff_webp(*chunks: bytes) -> bytes:
    body = b"WEBP" + b"".join(chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def vp8_chunk_of(image: Image.Image) -> bytes:
    """The 'VP8 ' chunk (lossy bitstream) of a simple WebP of `image`."""
    data = encode(image, "WEBP", quality=60)
    assert data[12:16] == b"VP8 ", data[12:16]
    return data[12:]


def one_frame_animation_on_canvas(width: int, height: int) -> bytes:
    """An animated-flagged WebP whose one small frame sits on a width×height canvas."""
    frame = scene(64, 48)
    vp8x = webp_chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + (width - 1).to_bytes(3, "little")
                      + (height - 1).to_bytes(3, "little"))
    anim = webp_chunk(b"ANIM", b"\xff\xff\xff\xff" + b"\x00\x00")
    anmf = webp_chunk(b"ANMF", b"\x00" * 6 + (frame.width - 1).to_bytes(3, "little")
                      + (frame.height - 1).to_bytes(3, "little") + (100).to_bytes(3, "little") + b"\x00"
                      + vp8_chunk_of(frame))
    return riff_webp(vp8x, anim, anmf)


def vp8l_header_claim(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    return riff_webp(webp_chunk(b"VP8L", b"\x2f" + struct.pack("<I", bits) + b"\x00" * 16))


def many_scans_jpeg(width: int, height: int, scans: int) -> bytes:
    """A greyscale progressive JPEG: one DC scan, then `scans` AC scans each skipping every block by EOBRUN.

    Each AC scan is ~60 bytes yet makes libjpeg visit every block of the image: the known way to turn
    a small file into minutes of decoding. Repeating a scan breaks the progression rules, which
    libjpeg reports as a warning and decodes anyway.
    """
    blocks_x, blocks_y = -(-width // 8), -(-height // 8)
    blocks = blocks_x * blocks_y
    dqt = jpeg_segment(0xDB, b"\x00" + b"\x01" * 64)
    sof2 = jpeg_segment(0xC2, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    # DC table 0: one code, '0' (1 bit), for category 0 (no difference): every block is the same grey.
    dht_dc = jpeg_segment(0xC4, b"\x00" + b"\x01" + b"\x00" * 15 + b"\x00")
    # AC table 0: EOB0..EOB14 (symbols 0x00, 0x10, ... 0xE0), a 4-bit code each: EOBn starts a run of
    # 2^n + (n extra bits) blocks with no AC coefficients, at most 32767 blocks per code.
    dht_ac = jpeg_segment(0xC4, b"\x10" + b"\x00\x00\x00\x0f" + b"\x00" * 12 + bytes(range(0, 0xF0, 0x10)))

    def pack_bits(bits: str) -> bytes:
        bits += "1" * (-len(bits) % 8)  # pad with ones, as the standard says
        out = bytearray()
        for i in range(0, len(bits), 8):
            out.append(int(bits[i : i + 8], 2))
            if out[-1] == 0xFF:
                out.append(0x00)  # byte stuffing
        return bytes(out)

    def eob_run(run: int) -> str:
        n = run.bit_length() - 1
        return format(n, "04b") + (format(run - (1 << n), f"0{n}b") if n else "")

    runs, left = [], blocks
    while left:
        run = min(left, 32767)
        runs.append(eob_run(run))
        left -= run
    dc_scan = jpeg_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + pack_bits("0" * blocks)
    ac_scan = jpeg_segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + pack_bits("".join(runs))
    return b"\xff\xd8" + dqt + sof2 + dht_dc + dht_ac + dc_scan + ac_scan * scans + b"\xff\xd9"


# ── the corpus ──────────────────────────────────────────────────────────────────────────────────


@functools.cache
def corpus() -> tuple[Hostile, ...]:
    return tuple(_build())


def _build() -> Iterator[Hostile]:
    base = scene()
    jpeg = jpeg_bytes(base, quality=85)
    png = png_bytes(base)
    webp = encode(base, "WEBP", quality=80)
    bigger_jpeg = jpeg_bytes(scene(640, 480), quality=85)
    unreadable, too_many = "photo_unreadable", "photo_too_many_pixels"
    not_allowed, animated = "photo_type_not_allowed", "photo_animated"
    failed_to_decode = {"undecodable", "truncated"}

    # ── decompression bombs: small files, huge declared sizes ──
    yield _item("bomb/jpeg-sof-65500x65500", with_sof_size(jpeg, 65500, 65500), too_many, "too_many_pixels")
    yield _item("bomb/jpeg-sof-8000x7000", with_sof_size(jpeg, 8000, 7000), too_many, "too_many_pixels",
                why="56 MP: under Pillow's own warning (89 MP), over ours (50 MP)")
    # 49 MP passes the header check; the scan has data for 96x64 only. libjpeg meets EOI early, warns
    # and fills the rest with grey: a (grey) derivative is as clean an answer as 'truncated'.
    yield _item("bomb/jpeg-sof-7000x7000", with_sof_size(jpeg, 7000, 7000), ACCEPTED, {READY, "truncated"}, seed=False)
    yield _item("bomb/png-ihdr-100000x100000", handmade_png(100_000, 100_000), too_many, "too_many_pixels")
    yield _item("bomb/png-ihdr-8000x7500", handmade_png(8000, 7500), too_many, "too_many_pixels")
    yield _item("bomb/png-ihdr-7000x7000-no-data", handmade_png(7000, 7000), ACCEPTED, failed_to_decode)
    yield _item("bomb/png-idat-zeros-7000x7000", zeros_png(7000, 7000),
                ACCEPTED, READY, why="49 MP of real (black) RGB pixels in ~150 kB: allowed, and must decode")
    yield _item("bomb/png-idat-zeros-8000x8000", zeros_png(8000, 8000),
                too_many, "too_many_pixels")
    # A 96x64 image whose IDAT inflates to 200 MB: the decoder must stop at the image's end.
    yield _item("bomb/png-idat-inflates-past-image", png_of(96, 64, 8, 2, zlib_zeros(200 << 20)),
                ACCEPTED, READY)
    yield _item("bomb/webp-vp8x-16383x16383", handmade_webp_vp8x(16383, 16383) + vp8_chunk_of(base),
                too_many, {"too_many_pixels", "undecodable"}, filename="photo.webp", content_type="image/webp")
    yield _item("bomb/webp-vp8l-16384x16384", vp8l_header_claim(16384, 16384), too_many,
                {"too_many_pixels", "undecodable"}, filename="photo.webp", content_type="image/webp")
    yield _item("bomb/webp-animation-canvas-16383x16383", one_frame_animation_on_canvas(16383, 16383), too_many,
                {"too_many_pixels", "undecodable"}, filename="photo.webp", content_type="image/webp")
    yield _item("bomb/webp-animation-canvas-9000x9000", one_frame_animation_on_canvas(9000, 9000), too_many,
                {"too_many_pixels", "undecodable"}, filename="photo.webp", content_type="image/webp",
                why="81 MP: under Pillow's own WebP check (2x 89 MP), which runs before libwebp allocates")
    # 49 MP of canvas for one 64x48 frame: allowed by intake; the worker must either make it or fail cleanly.
    yield _item("bomb/webp-animation-canvas-7000x7000", one_frame_animation_on_canvas(7000, 7000), ACCEPTED,
                {READY, "out_of_memory"}, filename="photo.webp", content_type="image/webp", seed=False)

    # ── truncated at several cut points ──
    sof = sof_offset(bigger_jpeg)
    for label, cut in (("2-bytes", 2), ("in-app0", 12), ("after-sof", sof + 19), ("mid-scan", len(bigger_jpeg) // 2),
                       ("no-eoi", len(bigger_jpeg) - 2)):
        intake = {ACCEPTED, unreadable}
        # Only the EOI marker missing: every pixel is there, a derivative is right.
        worker = {READY, *failed_to_decode} if label == "no-eoi" else failed_to_decode
        yield _item(f"truncated/jpeg-{label}", bigger_jpeg[:cut], intake, worker)
    bigger_png = png_bytes(scene(320, 240))
    idat = bigger_png.index(b"IDAT")
    for label, cut in (("signature", 8), ("in-ihdr", 20), ("after-ihdr", 33),
                       ("mid-idat", (idat + len(bigger_png)) // 2), ("no-iend", len(bigger_png) - 12)):
        worker = {READY, *failed_to_decode} if label == "no-iend" else failed_to_decode
        yield _item(f"truncated/png-{label}", bigger_png[:cut], {ACCEPTED, unreadable}, worker,
                    filename="photo.png", content_type="image/png")
    bigger_webp = encode(scene(320, 240), "WEBP", quality=80)
    for label, cut in (("riff-only", 12), ("in-vp8-header", 24), ("mid-bitstream", len(bigger_webp) // 2),
                       ("last-byte", len(bigger_webp) - 1)):
        yield _item(f"truncated/webp-{label}", bigger_webp[:cut], {ACCEPTED, unreadable}, failed_to_decode,
                    filename="photo.webp", content_type="image/webp")

    # ── wrong magic: the bytes decide, never the name or declared type ──
    yield _item("magic/png-named-jpeg", png, ACCEPTED, READY, filename="photo.jpg", content_type="image/jpeg")
    yield _item("magic/webp-named-png", webp, ACCEPTED, READY, filename="photo.png", content_type="image/png")
    yield _item("magic/jpeg-named-webp", jpeg, ACCEPTED, READY, filename="photo.webp", content_type="image/webp")
    for fmt in ("GIF", "BMP", "TIFF", "ICO"):
        yield _item(f"magic/{fmt.lower()}-named-jpeg", encode(base, fmt), not_allowed, "undecodable")
    yield _item("magic/html-named-jpeg", b"<!doctype html><script>alert(1)</script>", not_allowed, "undecodable")
    yield _item("magic/svg-named-png", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
                not_allowed, "undecodable", filename="photo.png", content_type="image/png")
    yield _item("magic/jpeg-magic-png-body", b"\xff\xd8\xff" + png[3:], unreadable, "undecodable")
    yield _item("magic/png-magic-jpeg-body", b"\x89PNG\r\n\x1a\n" + jpeg[2:], unreadable, "undecodable",
                filename="photo.png", content_type="image/png")
    yield _item("magic/webp-magic-jpeg-body", b"RIFF" + struct.pack("<I", len(jpeg) + 4) + b"WEBP" + jpeg,
                unreadable, "undecodable", filename="photo.webp", content_type="image/webp")

    # ── polyglots: an image that is also HTML or a ZIP ──
    html = b"<html><body><script>fetch('/api/v1/me').then(r=>r.text()).then(alert)</script></body></html>"
    yield _item("polyglot/jpeg-html-after-eoi", jpeg + html, ACCEPTED, READY)
    yield _item("polyglot/jpeg-html-in-com", jpeg_bytes(base, comment=b"*/" + html + b"/*" + COMMENT_MARK),
                ACCEPTED, READY)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("index.html", html)
    yield _item("polyglot/jpeg-zip-appended", jpeg + archive.getvalue(), ACCEPTED, READY)
    yield _item("polyglot/jpeg-zip-in-app15", after_soi(jpeg, jpeg_segment(0xEF, archive.getvalue())), ACCEPTED, READY)
    text = png_chunk(b"tEXt", b"Comment\x00" + html + TEXT_MARK)
    yield _item("polyglot/png-html-text-chunk-and-trailer", png[:33] + text + png[33:] + html, ACCEPTED, READY,
                filename="photo.png", content_type="image/png")
    yield _item("polyglot/webp-html-in-xmp", encode(base, "WEBP", xmp=html + XMP_MARK), ACCEPTED, READY,
                filename="photo.webp", content_type="image/webp")

    # ── colour modes ──
    yield _item("mode/cmyk-jpeg", jpeg_bytes(Image.new("CMYK", (96, 64), (0, 255, 255, 0))), ACCEPTED, READY)
    yield _item("mode/cmyk-jpeg-with-icc", jpeg_bytes(base.convert("CMYK"), icc_profile=b"\x00" * 128 + ICC_MARK),
                ACCEPTED, READY)
    yield _item("mode/png-16-bit-grey", png_bytes(Image.new("I;16", (48, 32), 40000)), ACCEPTED, READY,
                filename="photo.png", content_type="image/png")
    for label, colour, channels in (("grey-alpha", 4, 2), ("rgb", 2, 3), ("rgba", 6, 4)):
        yield _item(f"mode/png-16-bit-{label}", sixteen_bit_png(colour, channels), ACCEPTED, READY,
                    filename="photo.png", content_type="image/png")

    # ── one pixel wide or high, 50 million long ──
    for width, height in ((1, 50_000_000), (50_000_000, 1)):
        # Exactly 50 MP is allowed; the header has no data behind it.
        yield _item(f"line/png-header-{width}x{height}", handmade_png(width, height), ACCEPTED,
                    {*failed_to_decode, "out_of_memory"}, seed=False)
    yield _item("line/png-header-1x50000001", handmade_png(1, 50_000_001), too_many, "too_many_pixels")
    # Real files: every row there, compressed to ~100 kB. Pillow cannot write 1x50,000,000 cheaply (its
    # image needs a 400 MB table of row pointers), so that one is laid by hand; 50,000,000x1 is one row.
    yield _item("line/png-real-1x50000000", zeros_png(1, 50_000_000, 1, 0), ACCEPTED,
                {READY, "out_of_memory"}, filename="photo.png", content_type="image/png")
    yield _item("line/png-real-50000000x1", png_bytes(Image.new("1", (50_000_000, 1), 1), optimize=True), ACCEPTED,
                {READY, "out_of_memory"}, filename="photo.png", content_type="image/png", seed=False)

    # ── animation: refused at intake; the worker, if ever handed one, makes the first frame ──
    frames = [scene(), Image.new("RGB", (96, 64), "blue")]
    yield _item("animated/webp-2-frames", encode(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
                animated, READY, filename="photo.webp", content_type="image/webp")
    apng = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], duration=100)
    yield _item("animated/apng-2-frames", apng, animated, READY, filename="photo.png", content_type="image/png")
    actl = apng.index(b"acTL")
    claims = apng[: actl - 4] + png_chunk(b"acTL", struct.pack(">II", 0x7FFFFFFF, 0)) + apng[actl + 16 :]
    yield _item("animated/apng-claims-2147483647-frames", claims, animated, {READY, *failed_to_decode},
                filename="photo.png", content_type="image/png")

    # ── EXIF: near the 64 kB segment limit, nested IFDs, bogus offsets ──
    yield _item("exif/app1-at-64k-limit", after_soi(jpeg, exif_app1(huge_exif_tiff(65533 - 6))), ACCEPTED, READY)
    yield _item("exif/two-app1-segments", after_soi(jpeg, exif_app1(huge_exif_tiff(30000)),
                                                    exif_app1(nested_exif_tiff())), ACCEPTED, READY)
    yield _item("exif/nested-and-looping-ifds", after_soi(jpeg, exif_app1(nested_exif_tiff())), ACCEPTED, READY)
    yield _item("exif/bogus-offsets", after_soi(jpeg, exif_app1(bogus_offsets_exif_tiff())), ACCEPTED, READY)
    yield _item("exif/app1-length-past-end", jpeg[:2] + b"\xff\xe1\xff\xff" + b"Exif\x00\x00" + EXIF_MARK,
                {ACCEPTED, unreadable}, failed_to_decode)
    yield _item("exif/png-exif-chunk-loops", png[:33] + png_chunk(b"eXIf", nested_exif_tiff()) + png[33:], ACCEPTED,
                READY, filename="photo.png", content_type="image/png")
    yield _item("exif/webp-exif-chunk-bogus", encode(base, "WEBP", exif=b"Exif\x00\x00" + bogus_offsets_exif_tiff()),
                ACCEPTED, READY, filename="photo.webp", content_type="image/webp")

    # ── EXIF orientation that is not 1-8 as a SHORT ──
    for label, kind, count, value in (
        ("value-999", _SHORT, 1, struct.pack("<H", 999)),
        ("value-0", _SHORT, 1, struct.pack("<H", 0)),
        ("negative-sshort", _SSHORT, 1, struct.pack("<h", -6)),
        ("ascii", _ASCII, 4, b"six\x00"),
        ("rational", _RATIONAL, 1, struct.pack("<I", 26)),
        ("thousand-shorts", _SHORT, 1000, struct.pack("<I", 26)),
        ("long-2-to-32", _LONG, 1, struct.pack("<I", 0xFFFFFFFF)),
    ):
        extra = b"\x00" * 2000 if label == "thousand-shorts" else struct.pack("<II", 6, 1) if kind == _RATIONAL else b""
        yield _item(f"orientation/{label}", after_soi(jpeg, exif_app1(orientation_exif(kind, count, value, extra))),
                    ACCEPTED, READY)

    # ── ICC: huge, split badly, deep ──
    huge = ICC_MARK + bytes(range(256)) * 4096  # 1 MB: Pillow writes it as 17 APP2 segments
    yield _item("icc/jpeg-1mb-profile", jpeg_bytes(base, icc_profile=huge), ACCEPTED, READY)
    # Sequence numbers 0 and past the count, two "1 of 1"/"2 of 2" claims for the same place.
    numbering = ((0, 3), (7, 3), (2, 1), (2, 2))
    chunks = [icc_app2(ICC_MARK + b"x" * 60000, seq=seq, count=count) for seq, count in numbering]
    yield _item("icc/jpeg-segments-misnumbered", after_soi(jpeg, *chunks), ACCEPTED, READY)
    yield _item("icc/jpeg-deep-tag-table", jpeg_bytes(base, icc_profile=deep_icc_profile()), ACCEPTED, READY)
    iccp = png_chunk(b"iCCP", b"hostile\x00\x00" + zlib_zeros(50_000_000))
    yield _item("icc/png-iccp-inflates-to-50mb", png[:33] + iccp + png[33:], unreadable, "undecodable",
                filename="photo.png", content_type="image/png",
                why="Pillow refuses compressed chunks inflating past MAX_TEXT_CHUNK (1 MB)")
    yield _item("icc/png-iccp-deep", png_bytes(base, icc_profile=deep_icc_profile()), ACCEPTED, READY,
                filename="photo.png", content_type="image/png")
    yield _item("icc/webp-1mb-profile", encode(base, "WEBP", icc_profile=huge), ACCEPTED, READY,
                filename="photo.webp", content_type="image/webp")

    # ── progressive JPEG: ordinary, and built from thousands of scans ──
    yield _item("progressive/jpeg-ordinary", jpeg_bytes(scene(640, 480), progressive=True), ACCEPTED, READY)
    # pipeline.MAX_JPEG_SCANS: 100 scans are decoded, more are refused before libjpeg starts on them.
    yield _item("progressive/jpeg-100-scans", many_scans_jpeg(96, 64, 99), ACCEPTED, READY)
    yield _item("progressive/jpeg-101-scans", many_scans_jpeg(96, 64, 100), ACCEPTED, "undecodable")
    # 2 MB that kept libjpeg busy past the sandbox's 20 s CPU limit before the scan limit.
    yield _item("progressive/jpeg-20000-scans-7000x7000", many_scans_jpeg(7000, 7000, 20_000), ACCEPTED,
                "undecodable")
    # A motion photo's video (random bytes here) after EOI holds 0xFFDA by chance: not scans of the image.
    trailer = random.Random(12).randbytes(1 << 20)
    assert trailer.count(b"\xff\xda") > 0
    yield _item("progressive/jpeg-then-1mb-random-trailer", jpeg_bytes(scene(640, 480), progressive=True) + trailer,
                ACCEPTED, READY)
