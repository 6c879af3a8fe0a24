"""The PWA's files themselves, without a browser: the size budget, generated files up to date, the
manifest, one set of string keys for both languages, and nothing that could render text as HTML."""

from __future__ import annotations

import gzip
import json
import posixpath
import re
from pathlib import Path

import pytest
from PIL import Image

from gridrider import pwa_assets

PWA = pwa_assets.PWA_DIR
VIEWS = PWA / "js" / "views"
SHELL_BUDGET = 60 * 1024
ROLE_BUDGET = 20 * 1024  # each role's own views, fetched only by members of that role
REGENERATE = "run `python -m gridrider.pwa_assets` and commit what it writes"


def own_code() -> list[Path]:
    return sorted(p for p in PWA.rglob("*") if p.suffix in (".js", ".css", ".html"))


def role_folders() -> list[Path]:
    return sorted(p for p in VIEWS.iterdir() if p.is_dir())


def role_of(path: Path) -> str | None:
    """The role folder a file belongs to (js/views/<role>/**), or None for the shell. The views every role
    shares (js/views/signin.js, account.js) are imported by app.js at start-up: they are the shell's."""
    parts = path.relative_to(VIEWS).parts if path.is_relative_to(VIEWS) else ()
    return parts[0] if len(parts) > 1 else None


def gzipped(paths: list[Path]) -> dict[str, int]:
    return {p.relative_to(PWA).as_posix(): len(gzip.compress(p.read_bytes(), 9)) for p in paths}


def _within(sizes: dict[str, int], budget: int, what: str) -> None:
    total = sum(sizes.values())
    print(f"\n{what}: {len(sizes)} files, {total / 1024:.1f} KB gzipped (budget {budget // 1024} KB)")
    assert total < budget, sorted(sizes.items(), key=lambda kv: -kv[1])


def test_the_shell_stays_under_60_kb_gzipped():
    _within(gzipped([p for p in own_code() if role_of(p) is None]), SHELL_BUDGET, "PWA shell")


@pytest.mark.parametrize("role", [p.name for p in role_folders()])
def test_each_roles_views_stay_under_20_kb_gzipped(role):
    _within(gzipped([p for p in own_code() if role_of(p) == role]), ROLE_BUDGET, f"{role} views")


def _import_targets(text: str) -> tuple[list[str], list[str]]:
    """(static, dynamic) import targets as written: statements at the start of a line, and import() calls —
    not any "from '" inside a string (en.js has 'supervisor.from': 'From')."""
    static = re.findall(r"""^\s*(?:import|export)\b[^'"();]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]""",
                        text, re.M)
    dynamic = re.findall(r"""\bimport\(\s*['"]([^'"]*)['"]\s*\)""", text)
    return [a or b for a, b in static], dynamic


def _imports(path: Path) -> tuple[list[str], list[str]]:
    """A module's (static, dynamic) import targets resolved to paths under pwa/ ("/js/…")."""
    base = "/" + path.parent.relative_to(PWA).as_posix()

    def resolve(target: str) -> str:
        return posixpath.normpath(target if target.startswith("/") else posixpath.join(base, target))

    static, dynamic = _import_targets(path.read_text(encoding="utf-8"))
    return [resolve(t) for t in static], [resolve(t) for t in dynamic]


def test_role_views_load_only_for_their_role():
    """The split budget holds only if it is true: no shell module imports a role's views statically (the
    router's import() loads them for the signed-in member), and no role reaches into another's folder."""
    folders = [p.name for p in role_folders()]
    lazily = set(_imports(PWA / "js" / "app.js")[1])
    for role in folders:
        assert f"/js/views/{role}/index.js" in lazily, f"app.js must import() views/{role}/ for its members only"
    for path in [p for p in own_code() if p.suffix == ".js"] + [PWA / "sw.js"]:
        mine = role_of(path)
        for target in _imports(path)[0]:
            theirs = role_of(PWA / target.lstrip("/"))
            assert theirs is None or theirs == mine, f"{path.relative_to(PWA)} imports {target}: another role's views"


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
        static, dynamic = _import_targets(text)
        for target in static + dynamic:
            assert target.startswith(("./", "../", "/js/")), f"{path} imports {target}: only our own modules"
    index = (PWA / "index.html").read_text(encoding="utf-8")
    assert re.findall(r"<script\b[^>]*>", index) == ['<script type="module" src="/js/app.js">']
    assert not re.search(r"\son[a-z]+=|\sstyle=", index)
