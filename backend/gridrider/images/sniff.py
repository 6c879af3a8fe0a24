"""Check an uploaded photo from its header only, before the API stores it (DESIGN §4, §8).

Header only, never pixels: the API answers a courier's report in milliseconds and must not spend
CPU or memory decoding a 12 MB photo (or a crafted one) on the request path. Decoding, EXIF
stripping and resizing happen later in a sandboxed worker; a photo that passes here but fails to
decode there fails alone: the hazard report still goes on.

The type is decided by the magic bytes, never by a declared content type or file name. JPEG, PNG
and WebP are allowed. HEIC is not accepted yet: pillow-heif is not installed (DESIGN §4 allows it
once it is). Pillow reads the header to get the size and frame count; its decompression-bomb
*warning* is made an error for that call, and our own MAX_PIXELS limit applies on top of Pillow's.

Pillow's header parsers are lazy about pixels but not cheap for every input: they walk JPEG
segments, JPEG fill bytes and PNG chunks in Python, and inflate compressed PNG chunks (iCCP, zTXt,
iTXt, up to 1 MB each) while opening. A crafted 12 MB file of tiny segments or repeated compressed
chunks costs seconds to tens of seconds of CPU. So Pillow reads the bytes through a reader that
allows a bounded number of reads, a PNG may carry only a few compressed chunks before its image
data, and a WebP canvas is checked against MAX_PIXELS before Pillow creates libwebp's decoder
(which allocates the whole canvas).

Cost: about 0.1-0.3 ms for a JPEG or PNG of any size, a few ms for a 12 MB WebP (Pillow copies it
whole for libwebp), at most about 20 ms for a crafted PNG; the first call in a process also pays
for Pillow's plugin imports (about 35 ms). `warnings.catch_warnings` changes process-wide state and
is not thread-safe before Python 3.14: call `sniff_photo` on the event loop, not from a thread pool.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import msgspec
from PIL import Image

MAX_PHOTO_BYTES = 12 * 1024 * 1024
MAX_PIXELS = 50_000_000
MAX_FRAMES = 1  # phone photos are stills; animated WebP/PNG (APNG) is refused

# Pillow reads a few times per JPEG segment or PNG chunk and once per JPEG fill or junk byte between segments;
# real camera photos need under 100 reads, and 4096 keep its Python loop to a few milliseconds.
_MAX_HEADER_READS = 4096
# Pillow inflates each iCCP/zTXt/iTXt chunk before the image data when it opens a PNG, up to 1 MB each
# (about 2.5 ms); real PNGs carry one to five of them.
_MAX_PNG_COMPRESSED_CHUNKS = 8
_MAX_PNG_CHUNKS_SCANNED = 512

_JPEG_MAGIC = b"\xff\xd8\xff"
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PhotoRejected(Exception):
    """A photo the API must refuse: `status` and `code` for the response, `detail` a short English reason."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail


class SniffedPhoto(msgspec.Struct, frozen=True):
    content_type: str
    extension: str
    width: int
    height: int
    bytes: int


class _Kind(NamedTuple):
    content_type: str
    extension: str
    pillow_open: str  # the one Pillow plugin allowed to read it
    pillow_formats: frozenset[str]  # what Image.format may then say


_JPEG = _Kind("image/jpeg", "jpg", "JPEG", frozenset({"JPEG", "MPO"}))
_PNG = _Kind("image/png", "png", "PNG", frozenset({"PNG"}))
_WEBP = _Kind("image/webp", "webp", "WEBP", frozenset({"WEBP"}))


def _unreadable(detail: str) -> PhotoRejected:
    return PhotoRejected(422, "photo_unreadable", detail)


def _too_many_pixels(width: int, height: int) -> PhotoRejected:
    return PhotoRejected(422, "photo_too_many_pixels", f"{width}x{height} is over {MAX_PIXELS} pixels")


def _kind_of(data: bytes) -> _Kind | None:
    if data.startswith(_JPEG_MAGIC):
        return _JPEG
    if data.startswith(_PNG_MAGIC):
        return _PNG
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _WEBP
    return None


def _is_cut_magic(data: bytes) -> bool:
    """The bytes end inside an allowed magic: a truncated photo, not a foreign type."""
    if _JPEG_MAGIC.startswith(data) or _PNG_MAGIC.startswith(data):
        return True
    return len(data) < 12 and b"RIFF".startswith(data[:4]) and b"WEBP".startswith(data[8:])


class _HeaderTooComplex(Exception):
    pass


class _ReadBudget(io.BytesIO):
    """A BytesIO (sharing the caller's bytes, no copy) that allows only so many reads."""

    def __init__(self, data: bytes, max_reads: int) -> None:
        super().__init__(data)
        self._reads_left = max_reads

    def read(self, size: int | None = -1, /) -> bytes:
        self._reads_left -= 1
        if self._reads_left < 0:
            raise _HeaderTooComplex
        return super().read(size)


def _check_png_chunks(data: bytes) -> None:
    """Bound the zlib work Pillow does when it opens the PNG (chunks before the first IDAT)."""
    pos, compressed = len(_PNG_MAGIC), 0
    for _ in range(_MAX_PNG_CHUNKS_SCANNED):
        if pos + 8 > len(data):
            return  # truncated: Pillow says so
        chunk_type = data[pos + 4 : pos + 8]
        if chunk_type in (b"IDAT", b"IEND"):
            return
        if chunk_type in (b"iCCP", b"zTXt", b"iTXt"):
            compressed += 1
            if compressed > _MAX_PNG_COMPRESSED_CHUNKS:
                raise _unreadable(f"PNG has more than {_MAX_PNG_COMPRESSED_CHUNKS} compressed chunks before its image")
        pos += 12 + int.from_bytes(data[pos : pos + 4], "big")
    raise _unreadable(f"PNG has more than {_MAX_PNG_CHUNKS_SCANNED} chunks before its image")


def _webp_canvas(data: bytes) -> tuple[int, int]:
    """Width and height from the first chunk of a WebP (simple lossy, lossless, or extended)."""
    chunk = data[12:16]
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    raise _unreadable("WebP header has no readable VP8/VP8L/VP8X chunk")


def sniff_photo(data: bytes) -> SniffedPhoto:
    """Type, size and frame count of an uploaded photo from its header; raises PhotoRejected only."""
    size = len(data)
    if size > MAX_PHOTO_BYTES:
        raise PhotoRejected(413, "photo_too_large", f"{size} bytes is over {MAX_PHOTO_BYTES}")
    if size == 0:
        raise _unreadable("empty photo")
    kind = _kind_of(data)
    if kind is None:
        if _is_cut_magic(data):
            raise _unreadable(f"photo ends after {size} bytes")
        raise PhotoRejected(415, "photo_type_not_allowed", "not JPEG, PNG or WebP by its magic bytes")

    if kind is _PNG:
        _check_png_chunks(data)
    elif kind is _WEBP:
        width, height = _webp_canvas(data)
        if width * height > MAX_PIXELS:
            raise _too_many_pixels(width, height)

    try:
        with warnings.catch_warnings():
            # Warnings about malformed input are noise here; the bomb warning is an error.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(_ReadBudget(data, _MAX_HEADER_READS), formats=[kind.pillow_open]) as im:
                pillow_format = im.format
                width, height = im.size
                frames = getattr(im, "n_frames", 1)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise PhotoRejected(422, "photo_too_many_pixels", "over Pillow's decompression-bomb limit") from exc
    except _HeaderTooComplex as exc:
        raise _unreadable(f"header needs more than {_MAX_HEADER_READS} reads") from exc
    except Exception as exc:
        # Malformed headers raise UnidentifiedImageError, OSError ('Truncated File Read', 'could not
        # create decoder object'), ValueError (truncated PNG chunks, text memory), SyntaxError, EOFError,
        # struct.error...; none of them may become a 500. Pillow's message stays in __cause__ (it names objects).
        raise _unreadable(f"{kind.pillow_open} header could not be read ({type(exc).__name__})") from exc

    if pillow_format not in kind.pillow_formats:
        raise _unreadable(f"{kind.pillow_open} magic but Pillow read {pillow_format}")
    if width <= 0 or height <= 0:
        raise _unreadable(f"{width}x{height} image")
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(width, height)
    # An MPO's extra images are a gain map, depth map or preview of the same still (Ultra HDR and
    # portrait photos from phones), not animation frames: the worker decodes the first one.
    if pillow_format != "MPO" and frames > MAX_FRAMES:
        raise PhotoRejected(422, "photo_animated", f"{frames} frames")
    return SniffedPhoto(kind.content_type, kind.extension, width, height, size)
