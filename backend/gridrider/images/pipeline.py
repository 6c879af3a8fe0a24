"""Normalise one uploaded photo: decode, orient, strip, resize, encode, hash (DESIGN §2 step 4, §4).

Pure functions over bytes, no I/O: `normalise` runs inside the sandbox process (`sandbox.py`), whose
memory and CPU limits stand behind the checks made here.

Steps, and why:

1. Open with the JPEG, PNG or WebP plugin only; Pillow's decompression-bomb *warning* is an error,
   and more than `MAX_PIXELS` (50 MP, the intake limit) is refused before any pixel is decoded, as
   is a JPEG of more than `MAX_JPEG_SCANS` scans (see there).
2. JPEG draft (DCT-scaled) decoding: libjpeg decodes at 1/2, 1/4 or 1/8 scale for a fraction of
   the cost. `draft()` only scales down while the result still covers the requested box in BOTH
   dimensions, so the box asked for is the display size itself, in the file's stored orientation
   (asking for (1600, 1600) for a 4000x3000 photo gets no scaling at all, because 2000x1500 does
   not cover 1600 high). The stored orientation is the right frame even for EXIF orientations 5-8,
   which swap width and height: the display's long edge is the stored long edge, so the box is
   computed before the transposition and the transposition is applied after resizing (it commutes
   with resizing, and moves 4x fewer pixels there).
3. Convert to RGB: alpha is composited on white, 16-bit grey scaled (not clipped) to 8 bits,
   CMYK/P/LA/1/I converted.
4. Resize to the display size (Hamming, see `_DISPLAY_RESAMPLE`), apply the EXIF orientation
   (the same mapping as `ImageOps.exif_transpose`), then REBUILD a new plain image of the pixels
   alone (over the same pixel memory, see `_pixels_only`): a resized or transposed Pillow image
   keeps the original's `info` (EXIF, ICC, XMP, comment) and Pillow's JPEG encoder writes
   `info['comment']` back as a COM segment even when no `exif=` is given. Nothing of the original
   file but its pixels reaches the encoders, and they are given no metadata.
5. Display JPEG, thumbnail JPEG (from the display pixels) and a 64-bit difference hash (from the
   thumbnail pixels).

Cost on this machine (2-core AMD EPYC VM, shared; `gridrider bench images` prints current figures):
about 58 ms CPU (p50) for a 12 MP phone JPEG (draft decode at 1/2 ~25 ms, Hamming 2000->1600
~24 ms, display encode ~5 ms) and about 14-15 ms (p50) for a 1600 px JPEG (decode ~6.5 ms, display
encode ~5 ms, thumbnail ~1.3 ms, hash ~0.5 ms, thumbnail encode ~0.2 ms, scan count ~0.15 ms), in a
process whose allocator is tuned as the sandbox's child is (`sandbox.tune_allocator`).

A 1600 px photo is thus ~80% libjpeg-turbo's own decode and encode. Tried and left out (interleaved
runs, this machine): libjpeg's fast IDCT with merged upsampling (the draft argument of Pillow's JPEG
decoder, which `Image.draft` leaves off) saves 0.4 ms of the decode but its pixels are only 42 dB
from the accurate decode's; decoding to YCbCr and encoding from it saves the colour conversions but
the encode is 1.3 ms slower; feeding the decoder the whole file at once instead of 64 KB reads
changes nothing. Skipping the display's re-encode for an upload that is already a 1600 px baseline
JPEG (copying its entropy-coded data, dropping its other segments) would save ~5 ms, but it would
serve the uploader's own bytes rather than pixels rebuilt here: not done.
"""

from __future__ import annotations

import io
import re
import warnings

import msgspec
from PIL import Image, ImageFile, UnidentifiedImageError

from gridrider.images.sniff import MAX_PIXELS

DISPLAY_MAX_PX = 1600
THUMB_MAX_PX = 320

# Display format: JPEG q80, measured against WebP with Pillow 13 (libwebp 1.6, libjpeg-turbo 3)
# on this machine, one core, for a 1600x1200 image:
# - A detailed scene (a 4000x3000 mosaic of the real photos at their native resolution, reduced to
#   1600x1200): at equal PSNR WebP is 24-26% smaller with method 0 and 28-30% with method 2
#   (JPEG q80 434 KB / 32.8 dB; WebP m0 330 KB at the same PSNR), but costs 67-86 ms (m0),
#   90-137 ms (m2) or ~230 ms (m4, the default) to encode against 7-8 ms for JPEG q80.
# - The common case, a JPEG the phone already resized to 1600 px at quality ~0.8, kept at its size:
#   re-encoding at JPEG q80 on the same 8x8 grid is nearly lossless (54.9 dB against the decoded
#   upload, 430 KB), while WebP q80 m0 adds a full generation of loss (36.7 dB, 366 KB, 85 ms).
# The goal is <= 25 ms CPU for all of a 1600 px photo (decode + display + thumb + hash); any WebP
# method alone is 2-3x that, so the ~25% fewer bytes of WebP are not worth it here. JPEG also keeps
# the display image readable by every WeCom/SMS landing page and old WebView. Progressive JPEG
# (5% smaller, 6x the encode CPU) and optimize=True (1.5% smaller, +10 ms) were rejected too.
# Re-measured with the pipeline at ~14 ms for a 1600 px photo (the 1600 px client JPEG, quiet
# machine): JPEG q80 5 ms / 430 KB, optimize=True 13 ms / 423 KB, WebP q80 m0 49 ms / 366 KB,
# m2 82 ms / 352 KB.
DISPLAY_TYPE = "image/jpeg"
DISPLAY_QUALITY = 80
THUMB_QUALITY = 75

# Display resampling after draft decoding (a 12 MP photo is drafted to 2000x1500, then reduced by
# 1.25), measured against the full-decode + Lanczos reference on a 4000x3000 JPEG, as pixels before
# encoding / as the delivered q80 display JPEG, and CPU for the whole 12 MP normalise (interleaved,
# this machine under load):
#                 real photo upscaled to 12 MP    mosaic of real photos at native detail   CPU p50
#   Lanczos       51.2 / 38.0 dB                   39.5 / 32.1 dB                          142 ms
#   bicubic       49.3 / 37.9 dB                   37.9 / 31.7 dB                          121 ms
#   Hamming       44.3 / 37.3 dB                   34.9 / 30.9 dB                           94 ms
#   bilinear      42.4 / 36.8 dB                   34.6 / 30.7 dB                           92 ms
# Hamming (a windowed sinc of support 1) keeps the delivered display within 0.8 dB of Lanczos, a
# fraction of JPEG q80's own loss (the reference itself through q80: 38.0 / 32.7 dB), and is the
# only sharp filter that fits the 100 ms goal for a 12 MP photo; bicubic is the choice if that goal
# moves. (On the mosaic no filter reaches 35 dB after q80 encoding: JPEG, not resampling, bounds it.)
_DISPLAY_RESAMPLE = Image.Resampling.HAMMING
# The thumbnail of a full display image is 5x smaller: with reducing_gap=1 Pillow box-averages by the
# whole factor (1600x1200 -> 320x240 exactly) and bicubic does any remainder: ~2 ms, 36 dB against a
# direct Lanczos thumbnail, where Lanczos costs 9 ms (reducing_gap=2) to 27 ms (none) of a 25 ms budget.
_THUMB_RESAMPLE = Image.Resampling.BICUBIC
_THUMB_REDUCING_GAP = 1.0

_ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transposition that shows the photo upright (as ImageOps.exif_transpose).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

_FORMATS = ("JPEG", "PNG", "WEBP")

# libjpeg decodes each scan of a progressive JPEG over the whole image, and the standard's EOB runs let
# a scan of ~60 bytes skip millions of blocks: a 2 MB file of 20,000 scans on a 49 MP canvas passes
# intake and then spins the decoder until the sandbox's CPU limit (libjpeg-turbo's report LJT-01-003,
# whose TurboJPEG API has the same kind of guard, TJFLAG_LIMITSCANS; tests/images/hostile_corpus.py
# builds such a file). Encoders write 1 (baseline) to about 12 scans. Each scan costs ~10 ms at 49 MP
# here, so 100 scans bound that file to about a second of CPU (500 would still be 5 s).
MAX_JPEG_SCANS = 100
# Marker segments walked before giving up: a real photo has a few dozen (a few hundred ICC/MPF
# segments at most); millions of 4-byte segments would make this Python walk itself the slow part.
_MAX_JPEG_SEGMENTS = 5000
# In entropy-coded data 0xFF is followed by 0x00 (stuffing) or a restart marker; anything else (but a
# fill byte) is the next marker. The search runs in C, so skipping 12 MB of scan data costs ~ms.
_NEXT_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

# Reused-photo threshold on `dhash64` (DESIGN §2 step 4), from tests/images/test_reuse_threshold.py
# on the real photos of ../shared/photos (9 street photos of one town, 15 camera photos):
# - positives (each photo against its variant): resized to 1600 / 800 px: max 2; recompressed at
#   q=60: max 1; brightened +15%: max 3; cropped 5% off each side: 4-11 (median 7.5), max 11.
# - negatives: the 36 pairs of different street photos (similar scenes): min 21; all 276 pairs of
#   different photos (street + cameras): min 20, mean 31.6, sd 4.5.
# 12 catches every labelled variant with one bit to spare and keeps 8 bits clear of the nearest
# negative. It is set low on purpose rather than in the middle of the gap (15-16): the chance that
# two unrelated photos fall within T grows about 3x per bit (a normal fit of the 276 negatives
# gives ~1e-5 per pair at 12, ~7e-5 at 14), and each new photo is compared with every photo of the
# last 30 days. A plain 9x8 dHash could not separate these sets (crop 5%: max 15; negatives: min 15).
REUSE_MAX_HAMMING = 12

_MASK64 = (1 << 64) - 1


class NormalisedPhoto(msgspec.Struct, frozen=True):
    display: bytes
    display_type: str  # 'image/jpeg' (DISPLAY_TYPE; see the measurement above)
    thumb: bytes  # JPEG, long edge <= THUMB_MAX_PX
    width: int  # of the display image, after EXIF orientation
    height: int
    dhash: int  # dhash64 of the pixels, a signed int64 (fits PostgreSQL bigint)


class PhotoFailed(Exception):
    """The photo cannot be normalised; `reason` is short and machine-readable.

    Reasons: undecodable, truncated, too_many_pixels, out_of_memory (from here or the sandbox),
    decoder_crashed, timeout, cpu_limit (the sandbox only).
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason, detail)  # both in args, so the exception pickles across processes
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}" if self.detail else self.reason


def normalise(data: bytes) -> NormalisedPhoto:
    """Display JPEG, thumbnail JPEG, size and dHash of an uploaded photo; raises PhotoFailed only."""
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # Pillow would fill the missing rows with grey and call it a photo.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set: a truncated photo must fail")
    try:
        display = _display_pixels(data)
    except PhotoFailed:
        raise
    except MemoryError as exc:
        raise PhotoFailed("out_of_memory") from exc
    except Exception as exc:
        # Pillow reports bad input as OSError, ValueError, SyntaxError, EOFError, struct.error,
        # IndexError, ZeroDivisionError... any of them is this photo's failure, never the worker's.
        raise PhotoFailed("undecodable", type(exc).__name__) from exc
    try:
        thumb = _thumbnail(display)
        return NormalisedPhoto(
            display=_jpeg(display, DISPLAY_QUALITY),
            display_type=DISPLAY_TYPE,
            thumb=_jpeg(thumb, THUMB_QUALITY),
            width=display.width,
            height=display.height,
            dhash=dhash64(thumb),
        )
    except MemoryError as exc:
        raise PhotoFailed("out_of_memory") from exc


def fit_within(size: tuple[int, int], max_px: int) -> tuple[int, int]:
    """`size` scaled so that its long edge is at most `max_px`; never scaled up."""
    width, height = size
    long_edge = max(width, height)
    if long_edge <= max_px:
        return width, height
    scale = max_px / long_edge
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_jpeg_scans(data: bytes) -> None:
    """Refuse a JPEG of more than MAX_JPEG_SCANS scans before libjpeg starts on them (see above)."""
    pos = 2  # after SOI
    scans = 0
    for _ in range(_MAX_JPEG_SEGMENTS):
        found = _NEXT_JPEG_MARKER.search(data, pos)  # also steps over fill bytes and junk, as libjpeg does
        if found is None:
            return  # truncated: libjpeg says so
        marker, pos = data[found.start() + 1], found.end()
        if marker == 0xD9:  # EOI of the first image; what follows (MPO images, trailers) is not decoded
            return
        if marker == 0x01:  # TEM: no length field
            continue
        pos += int.from_bytes(data[pos : pos + 2], "big")
        if marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise PhotoFailed("undecodable", f"JPEG of more than {MAX_JPEG_SCANS} scans")
    raise PhotoFailed("undecodable", f"JPEG of more than {_MAX_JPEG_SEGMENTS} marker segments")


def _display_pixels(data: bytes) -> Image.Image:
    """Decoded, RGB, display-sized, upright pixels in a new image that carries nothing else."""
    if data.startswith(b"\xff\xd8"):
        _check_jpeg_scans(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=_FORMATS)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise PhotoFailed("too_many_pixels", "over Pillow's decompression-bomb limit") from exc
        except UnidentifiedImageError as exc:
            raise PhotoFailed("undecodable", "not a JPEG, PNG or WebP") from exc
        with image:
            stored_w, stored_h = image.size
            if stored_w <= 0 or stored_h <= 0:
                raise PhotoFailed("undecodable", f"{stored_w}x{stored_h} image")
            if stored_w * stored_h > MAX_PIXELS:
                raise PhotoFailed("too_many_pixels", f"{stored_w}x{stored_h} is over {MAX_PIXELS} pixels")
            orientation = _orientation(image)
            # The display size in the stored orientation (see the module docstring, step 2).
            target = fit_within((stored_w, stored_h), DISPLAY_MAX_PX)
            if image.format in ("JPEG", "MPO"):
                image.draft("RGB", target)
            try:
                image.load()
            except OSError as exc:
                if "truncated" in str(exc):
                    raise PhotoFailed("truncated") from exc
                raise
            rgb = _to_rgb(image)
            if rgb.size != target:
                rgb = rgb.resize(target, _DISPLAY_RESAMPLE)
            method = _TRANSPOSE.get(orientation)
            if method is not None:
                rgb = rgb.transpose(method)
            clean = _pixels_only(rgb)
    assert type(clean) is Image.Image and not clean.info
    return clean


def _pixels_only(image: Image.Image) -> Image.Image:
    """The rebuild (see the module docstring, step 4): a new plain Image of `image`'s pixels alone.

    `Image.fromarrow` wraps the same pixel memory in a new `Image.Image` (not the plugin's class,
    with an empty `info`) without copying it. For an upright 1600 px upload, which is neither
    resized nor transposed, copying its 7.7 MB into `Image.new` + `paste` cost 0.5-1.5 ms of its
    15-17 ms (interleaved `normalise` runs against the copying version; identical output bytes).
    Pillow exports only pixels stored in one block (its arena's 16 MB blocks; a display image is at
    most 1600x1600x4 = 10 MB), so anything else is copied. The shared pixels are read-only: Pillow
    copies them before any in-place change.
    """
    try:
        return Image.fromarrow(image, "RGB", image.size)
    except ValueError:  # rows in more than one block
        clean = Image.new("RGB", image.size)
        clean.paste(image)
        return clean


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:
        return 1  # unreadable EXIF: the pixels are still the photo, shown as stored
    return value if isinstance(value, int) else 1


def _to_rgb(image: Image.Image) -> Image.Image:
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit grey (PNG): scale to 8 bits; convert('L') would clip everything above 255 to white.
        grey = image.convert("I").point(lambda value: value * (1 / 256)).convert("L")
        return grey.convert("RGB")
    if mode == "F":
        return image.convert("L").convert("RGB")
    if mode in ("RGBA", "LA", "La", "PA", "RGBa") or (mode in ("P", "L", "RGB") and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, P, CMYK, YCbCr, RGBX...


def _thumbnail(display: Image.Image) -> Image.Image:
    size = fit_within(display.size, THUMB_MAX_PX)
    if size == display.size:
        return display
    return display.resize(size, _THUMB_RESAMPLE, reducing_gap=_THUMB_REDUCING_GAP)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    # No exif/icc_profile/xmp/comment arguments, and `image` is a rebuilt one with an empty `info`.
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def dhash64(image: Image.Image) -> int:
    """64-bit difference hash of the pixels, as a signed int64 (PostgreSQL bigint).

    32 bits of horizontal gradient (a 9x4 grid of luma averages, left > right) and 32 bits of
    vertical gradient (a 4x9 grid, top > bottom). This is more robust to a small crop than the
    classic 9x8 horizontal dHash, because each gradient is coarse across its own direction:
    a 5% crop off each side moves a 9x8 cell by half its height, but a 9x4 cell by a fifth.
    See REUSE_MAX_HAMMING for the measured separation.

    Images larger than a thumbnail are first reduced exactly as the thumbnail is, so the hash of a
    display image and of its thumbnail are the same.
    """
    if max(image.size) > THUMB_MAX_PX:
        image = _thumbnail(image)
    if image.mode not in ("L", "RGB"):
        image = _to_rgb(image)
    grey = image.convert("L")
    across = grey.resize((9, 4), Image.Resampling.LANCZOS).get_flattened_data()
    down = grey.resize((4, 9), Image.Resampling.LANCZOS).get_flattened_data()
    bits = 0
    for row in range(4):
        for col in range(8):
            bits = (bits << 1) | (across[row * 9 + col] > across[row * 9 + col + 1])
    for row in range(8):
        for col in range(4):
            bits = (bits << 1) | (down[row * 4 + col] > down[(row + 1) * 4 + col])
    return bits - (1 << 64) if bits >= 1 << 63 else bits


def hamming(a: int, b: int) -> int:
    """Bits that differ between the 64-bit patterns of two (signed or unsigned) hashes."""
    return ((a ^ b) & _MASK64).bit_count()
