"""The PWA's generated files: its icons, and the service worker's shell list and version.

`python -m gridrider.pwa_assets` rewrites both in pwa/; the outputs are committed, because the API
serves pwa/ as it is (no build step at deploy time) and a fresh checkout must already be installable.
tests/pwa/test_shell.py fails when an output is stale, naming this command.

Why the version is a hash of the shell: the service worker serves the shell cache-first, so a change to
any shell file reaches phones only through a new sw.js. Deriving the version from the files' bytes means
nobody has to remember to bump it, and a forgotten re-run is a failing test rather than riders stuck on
an old app.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from pathlib import Path

from PIL import Image, ImageDraw

PWA_DIR = Path(__file__).resolve().parents[2] / "pwa"
THEME = (194, 65, 12)  # #c2410c, the manifest's theme_color: white on it reads in sunlight (contrast 5.2:1)
WHITE = (255, 255, 255)
SUPERSAMPLE = 4  # drawn large, then shrunk: Pillow's shapes have no anti-aliasing of their own
# Not part of the offline shell: the worker itself (the browser keeps it), notes for developers, and icons
# only the installer reads (it fetches them online, at install time).
NOT_SHELL = {"sw.js", "README.md", "icons/icon-512.png", "icons/maskable-512.png"}
SHELL_BLOCK = re.compile(r"// <shell>.*?// </shell>\n", re.S)


def _pin(draw: ImageDraw.ImageDraw, cx: float, cy: float, size: float, colour: tuple[int, ...],
         mark: tuple[int, ...] | None) -> None:
    """A map pin `size` tall centred on (cx, cy), with an exclamation mark cut in `mark`'s colour."""
    r = size * 0.34
    head_y = cy - size / 2 + r
    draw.ellipse((cx - r, head_y - r, cx + r, head_y + r), fill=colour)
    # The tip: a triangle whose sides touch the head tangentially (cos θ = r / distance to the tip).
    tip = cy + size / 2 - head_y
    cos = r / tip
    sin = (1 - cos * cos) ** 0.5
    draw.polygon([(cx - r * sin, head_y + r * cos), (cx + r * sin, head_y + r * cos), (cx, cy + size / 2)],
                 fill=colour)
    if mark is not None:
        w = r * 0.26
        draw.rounded_rectangle((cx - w / 2, head_y - r * 0.62, cx + w / 2, head_y + r * 0.18), radius=w / 2,
                               fill=mark)
        draw.ellipse((cx - w * 0.6, head_y + r * 0.34, cx + w * 0.6, head_y + r * 0.34 + w * 1.2), fill=mark)


def icon(size: int, *, maskable: bool = False) -> Image.Image:
    """The app icon: a white pin with '!' on the theme colour.

    `any` icons are a rounded square on transparency; maskable ones fill the square (the launcher cuts
    its own shape) and keep the pin inside the central 80% circle every mask leaves visible."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    if maskable:
        draw.rectangle((0, 0, big, big), fill=THEME)
        pin = big * 0.5
    else:
        draw.rounded_rectangle((0, 0, big - 1, big - 1), radius=big * 0.22, fill=THEME)
        pin = big * 0.7
    _pin(draw, big / 2, big / 2, pin, WHITE, THEME)
    return image.resize((size, size), Image.Resampling.LANCZOS)


def badge(size: int = 72) -> Image.Image:
    """The notification badge Android shows in the status bar: only the alpha channel counts there."""
    big = size * SUPERSAMPLE
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    _pin(ImageDraw.Draw(image), big / 2, big / 2, big * 0.9, WHITE, (0, 0, 0, 0))
    return image.resize((size, size), Image.Resampling.LANCZOS)


def icon_files() -> dict[str, Image.Image]:
    return {
        "icons/icon-192.png": icon(192),
        "icons/icon-512.png": icon(512),
        "icons/maskable-512.png": icon(512, maskable=True),
        "icons/badge-72.png": badge(72),
    }


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    return out.getvalue()


def shell_files(pwa_dir: Path = PWA_DIR) -> list[str]:
    """Every file the app needs offline, as the URL paths the service worker precaches."""
    paths = sorted(p.relative_to(pwa_dir).as_posix() for p in pwa_dir.rglob("*") if p.is_file())
    return [p for p in paths if p not in NOT_SHELL and not p.startswith(".")]


def shell_block(pwa_dir: Path = PWA_DIR) -> str:
    files = shell_files(pwa_dir)
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.encode() + b"\0" + (pwa_dir / path).read_bytes() + b"\0")
    urls = ["/"] + [f"/{p}" for p in files]
    lines = ",\n".join(f"  '{u}'" for u in urls)
    return (f"// <shell> written by `python -m gridrider.pwa_assets` from the files in pwa/; never by hand\n"
            f"const VERSION = '{digest.hexdigest()[:16]}';\n"
            f"const SHELL = [\n{lines},\n];\n"
            f"// </shell>\n")


def stamp_service_worker(pwa_dir: Path = PWA_DIR) -> bool:
    """Write the current shell block into sw.js; True when it changed."""
    sw = pwa_dir / "sw.js"
    text = sw.read_text(encoding="utf-8")
    if not SHELL_BLOCK.search(text):
        raise SystemExit(f"{sw}: no '// <shell>' … '// </shell>' block to rewrite")
    updated = SHELL_BLOCK.sub(lambda _m: shell_block(pwa_dir), text, count=1)
    if updated != text:
        sw.write_text(updated, encoding="utf-8")
    return updated != text


def main(pwa_dir: Path = PWA_DIR) -> int:
    (pwa_dir / "icons").mkdir(exist_ok=True)
    for name, image in icon_files().items():
        data = png_bytes(image)
        target = pwa_dir / name
        # Rewrite only real changes, so the shell version (a hash of the bytes) moves only when it must.
        if not target.exists() or Image.open(target).convert("RGBA").tobytes() != image.tobytes():
            target.write_bytes(data)
            print(f"wrote {target}")
    if stamp_service_worker(pwa_dir):
        print(f"stamped {pwa_dir / 'sw.js'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
