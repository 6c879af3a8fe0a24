"""`gridrider areas import FILE.geojson`: the same checks as the API, a report for a terminal, an exit code."""

from __future__ import annotations

import asyncio

import msgspec
import pytest

from gridrider.cli import main
from tests.domain.test_area_import import by_code, rect, town


@pytest.fixture
def cli_env(monkeypatch, database_url, tmp_path, db):
    """The CLI reads its settings from the environment: point it at this worker's database."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDRIDER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GRIDRIDER_LOG_LEVEL", "WARNING")


def geojson(tmp_path, features: list[dict], name: str = "areas.geojson") -> str:
    path = tmp_path / name
    path.write_bytes(msgspec.json.encode({"type": "FeatureCollection", "features": features}))
    return str(path)


async def run(*argv: str) -> int:
    # In a thread: the command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(main, ["areas", "import", *argv])


async def count(db) -> int:
    return await db.fetchval("SELECT count(*) FROM areas")


async def test_a_dry_run_then_an_import_then_a_re_import(cli_env, db, tmp_path, capsys):
    path = geojson(tmp_path, town())
    assert await run(path, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "5 features (dry run: nothing written)" in out
    assert "would create 5, would update 0, unchanged 0; 0 area(s) in the database are not in the file" in out
    assert "  would create NT-S-C1-G1 (grid)" in out
    assert "would import" in out
    assert await count(db) == 0

    assert await run(path) == 0
    out = capsys.readouterr().out.splitlines()
    assert "  created NT-S-C1-G1 (grid)" in out and out[-1] == "imported"
    assert await count(db) == 5

    features = town()
    by_code(features, "NT-S-C1")["properties"]["name_zh"] = "河畔社区"
    assert await run(geojson(tmp_path, features[2:], "c1.geojson")) == 0
    out = capsys.readouterr().out
    assert "created 0, updated 1, unchanged 2; 2 area(s) in the database are not in the file and are left alone" in out
    assert "  updated NT-S-C1 (name_zh)" in out
    assert await db.fetchval("SELECT name_zh FROM areas WHERE code = 'NT-S-C1'") == "河畔社区"


async def test_problems_are_listed_and_a_refusal_exits_non_zero(cli_env, db, tmp_path, capsys):
    features = town()
    features.append({"type": "Feature", "geometry": None,
                     "properties": {"code": "NT-S-C9", "level": "community", "parent": "XX", "name_zh": "九"}})
    by_code(features, "NT-S-C1-G2")["geometry"] = rect(100, 0, 200, 80)
    assert await run(geojson(tmp_path, features)) == 1
    out = capsys.readouterr().out.splitlines()
    assert "problems: 1 error(s), 1 warning(s)" in out
    assert ("  error   area_parent_unknown (NT-S-C9, feature 5, properties.parent): "
            "The parent code is neither in the file nor in the database. [XX]") in out
    [gap] = [line for line in out if "area_gap" in line]
    assert gap.startswith("  warning area_gap (NT-S-C1, feature 2, geometry): Part of the area is in none")
    assert "2,000 m² near lon 122.45" in gap
    assert out[-1] == "refused because of errors: nothing imported"
    assert await count(db) == 0

    # Warnings alone pass, unless --strict.
    features = town()
    by_code(features, "NT-S-C1-G2")["geometry"] = rect(100, 0, 200, 80)
    path = geojson(tmp_path, features)
    assert await run(path, "--strict", "--dry-run") == 1
    assert capsys.readouterr().out.splitlines()[-1] == "refused because of warnings under --strict: nothing imported"
    assert await run(path, "--strict") == 1
    assert await count(db) == 0
    assert await run(path) == 0
    assert await count(db) == 5


async def test_a_file_that_cannot_be_read_exits_2(cli_env, db, tmp_path, capsys):
    assert await run(str(tmp_path / "missing.geojson")) == 2
    assert "cannot read" in capsys.readouterr().err
    broken = tmp_path / "broken.geojson"
    broken.write_text('{"type": "FeatureCollection", "features": [')
    assert await run(str(broken)) == 2
    err = capsys.readouterr().err
    assert "areas file refused, nothing imported" in err
    assert "The areas file is not a valid GeoJSON FeatureCollection. (body: Input data was truncated)" in err
    assert await count(db) == 0
