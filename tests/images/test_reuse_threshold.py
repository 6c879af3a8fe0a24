"""The reused-photo threshold (REUSE_MAX_HAMMING) against labelled fixtures built from real photos.

Positives: each real photo against a variant of itself, as a rider re-using a photo would make one
(resized to 1600 and 800 px long edge, recompressed at q=60, cropped 5% off each side, brightened
15%). Negatives: every pair of different photos: the 9 street photos of one town (similar scenes,
the hard case: two riders' photos of different hazards in one street must not be flagged) and
the 15 camera photos. Hashes come from `normalise`, as the job stores them. Run with `-s` to see
the distributions.
"""

from __future__ import annotations

import io
import itertools
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from gridrider.images.pipeline import REUSE_MAX_HAMMING, hamming, normalise

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "photos"


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _long_edge(image: Image.Image, px: int) -> Image.Image:
    scale = px / max(image.size)
    return image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)


def _crop(image: Image.Image, fraction: float) -> Image.Image:
    dx, dy = round(image.width * fraction), round(image.height * fraction)
    return image.crop((dx, dy, image.width - dx, image.height - dy))


VARIANTS = {
    "resized 1600": lambda im: _jpeg(_long_edge(im, 1600)),
    "resized 800": lambda im: _jpeg(_long_edge(im, 800)),
    "recompressed q60": lambda im: _jpeg(im, 60),
    "cropped 5% each side": lambda im: _jpeg(_crop(im, 0.05)),
    "brightened 15%": lambda im: _jpeg(ImageEnhance.Brightness(im).enhance(1.15)),
}


@pytest.fixture(scope="module")
def distances() -> dict[str, list[int]]:
    paths = sorted(PHOTOS.glob("street/*.jpg")) + sorted(PHOTOS.glob("cameras/*.jpg"))
    if len(paths) < 24:
        pytest.fail(f"this study needs the 24 shared real photos under {PHOTOS} (see the project README)")
    street = {p.name for p in paths if p.parent.name == "street"}
    hashes: dict[str, int] = {}
    out: dict[str, list[int]] = {name: [] for name in VARIANTS}
    for path in paths:
        data = path.read_bytes()
        hashes[path.name] = normalise(data).dhash
        with Image.open(io.BytesIO(data)) as opened:
            pixels = opened.convert("RGB")
        for name, make in VARIANTS.items():
            out[name].append(hamming(hashes[path.name], normalise(make(pixels)).dhash))
    out["negatives: street pairs"] = []
    out["negatives: other pairs"] = []
    for a, b in itertools.combinations(hashes, 2):
        key = "negatives: street pairs" if a in street and b in street else "negatives: other pairs"
        out[key].append(hamming(hashes[a], hashes[b]))
    return out


def _summary(distances: dict[str, list[int]]) -> str:
    lines = [f"REUSE_MAX_HAMMING = {REUSE_MAX_HAMMING}"]
    for name, values in distances.items():
        histogram = " ".join(f"{d}:{n}" for d, n in sorted(Counter(values).items()))
        lines.append(f"{name:26} n={len(values):3} min={min(values):2} max={max(values):2}  {histogram}")
    return "\n".join(lines)


def test_every_variant_is_within_the_threshold(distances: dict[str, list[int]]) -> None:
    print("\n" + _summary(distances))
    for name in VARIANTS:
        assert max(distances[name]) <= REUSE_MAX_HAMMING, _summary(distances)


def test_no_pair_of_different_photos_is_within_the_threshold(distances: dict[str, list[int]]) -> None:
    assert len(distances["negatives: street pairs"]) == 36
    assert len(distances["negatives: other pairs"]) == 276 - 36
    for name in ("negatives: street pairs", "negatives: other pairs"):
        assert min(distances[name]) > REUSE_MAX_HAMMING, _summary(distances)


def test_the_threshold_leaves_room_on_both_sides(distances: dict[str, list[int]]) -> None:
    """Not a knife-edge fit: at least one bit over the worst variant, several under the nearest pair."""
    worst_positive = max(max(distances[name]) for name in VARIANTS)
    nearest_negative = min(min(distances["negatives: street pairs"]), min(distances["negatives: other pairs"]))
    assert worst_positive < REUSE_MAX_HAMMING
    assert nearest_negative - REUSE_MAX_HAMMING >= 4, _summary(distances)
