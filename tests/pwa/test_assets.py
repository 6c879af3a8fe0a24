"""The PWA's files themselves, without a browser: the size budget, generated files up to date, the
manifest, one set of string keys for both languages, and nothing that could render text as HTML."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from gridrider import pwa_assets

PWA = pwa_assets.PWA_DIR
SHELL_BUDGET = 60 * 1024
REGENERATE = "run `python -m gridrider.pwa_assets` and commit what it writes"


def own_code() -> list[Path]:
    return sorted(p for p in PWA.rglob("*") if p.suffix in (".js", ".css", ".html"))


def test_the_shell_stays_under_60_kb_gzipped():
    sizes = {p.relative_to(PWA).as_posix(): len(gzip.compress(p.read_bytes(), 9)) for p in own_code()}
    total = sum(sizes.values())
    print(f"\nPWA shell: {len(sizes)} files, {total / 1024:.1f} KB gzipped (budget {SHELL_BUDGET // 1024} KB)")
    assert total < SHELL_BUDGET, sorted(sizes.items(), key=lambda kv: -kv[1])


def test_the_service_worker_lists_and_versions_the_current_shell():
    assert pwa_assets.shell_block() in (PWA / "sw.js").read_text(encoding="utf-8"), REGENERATE


@pytest.mark.parametrize("name", sorted(pwa_assets.icon_files()))
def test_icons_are_what_the_generator_draws(name):
    drawn = pwa_assets.icon_files()[name]
    path = PWA / name
    assert path.exists(), REGENERATE
    stored = Image.open(path).convert("RGBA")
    assert stored.size == drawn.size and stored.tobytes() == drawn.tobytes(), REGENERATE


def test_maskable_icons_fill_their_square_and_others_have_round_corners():
    assert Image.open(PWA / "icons/maskable-512.png").convert("RGBA").getpixel((2, 2))[3] == 255
    assert Image.open(PWA / "icons/icon-512.png").convert("RGBA").getpixel((2, 2))[3] == 0


def test_the_manifest_names_the_app_in_both_languages_and_installs_standalone():
    manifest = json.loads((PWA / "manifest.webmanifest").read_text(encoding="utf-8"))
    assert manifest["lang"] == "zh-CN" and manifest["name"].startswith("随手拍") and manifest["short_name"] == "随手拍"
    assert manifest["name_localized"]["en"] and manifest["short_name_localized"]["en"]
    assert manifest["display"] == "standalone" and manifest["start_url"].startswith(manifest["scope"])
    index = (PWA / "index.html").read_text(encoding="utf-8")
    assert f'<meta name="theme-color" content="{manifest["theme_color"]}">' in index
    icons = {(i["sizes"], i["purpose"]) for i in manifest["icons"]}
    assert {("192x192", "any"), ("512x512", "any"), ("512x512", "maskable")} <= icons
    for icon in manifest["icons"]:
        width, height = (int(n) for n in icon["sizes"].split("x"))
        assert Image.open(PWA / icon["src"].lstrip("/")).size == (width, height)


def _keys(path: Path) -> set[str]:
    return set(re.findall(r"^\s*'([^']+)':", path.read_text(encoding="utf-8"), re.M))


def test_both_languages_have_the_same_strings_and_every_string_used_exists():
    zh, en = _keys(PWA / "js/strings/zh-CN.js"), _keys(PWA / "js/strings/en.js")
    assert zh - en == set() and en - zh == set()
    used = set()
    for path in PWA.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"\bt\('([a-zA-Z]+\.[a-zA-Z0-9_.]+)'", text))
        used |= set(re.findall(r"label: '([a-z]+\.[a-zA-Z]+)'", text))
    assert used - zh == set()


def test_no_code_path_renders_text_as_html_or_loads_code_from_elsewhere():
    forbidden = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
                           r"setAttribute\(\s*'on|srcdoc")
    for path in PWA.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        assert not forbidden.search(text), f"{path}: {forbidden.search(text).group(0)}"
        for target in re.findall(r"""(?:from|import\()\s*['"]([^'"]+)['"]""", text):
            assert target.startswith(("./", "../", "/js/")), f"{path} imports {target}: only our own modules"
    index = (PWA / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script\b[^>]*>", index) == ['<script type="module" src="/js/app.js">']
    assert not re.search(r"\son[a-z]+=|\sstyle=", index)
