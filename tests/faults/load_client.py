"""The load client of the fault suite, in a process of its own: riders posting real-size photos at a steady
rate and resending like the PWA's outbox does (same `client_id`, same bytes, backing off) until they get an
answer; grid members taking dispatched incidents of their grids. It keeps what the system promised: every
report it got a 2xx for.

    python -m tests.faults.load_client CONFIG.json

CONFIG: api_urls, riders [{member_id, token, lat, lon}], grid_members [{member_id, token}], rate (reports/s),
photos_dir, stop_file (no new reports once it exists), resend_for_s (how long after the stop a report without
an answer is still resent), out (the result, JSON), progress (each acknowledgement's time and wait, one per
line, as they come), killer_reports (how many reports carry a photo that kills the decoder), photo_pool
(0: a new photo per report; N: N made first and reused), seed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from tests.faults.run_process import DECODER_KILLER

# Everyday and life-safety categories (manhole covers alert the community too); riders near one spot
# corroborate each other.
CATEGORIES = ("garbage_pileup", "blocked_fire_lane", "missing_manhole_cover", "damaged_pole")
RETRYABLE = {408, 425, 429, 500, 502, 503, 504}


class Photos:
    """Distinct phone-sized JPEGs cut from the real photos: a random crop of a random photo, so that reuse
    detection sees different pictures (as it would from riders photographing different hazards)."""

    def __init__(self, folder: Path, rng: random.Random) -> None:
        self._sources = [Image.open(p).convert("RGB") for p in sorted(folder.glob("*/*.jpg"))]
        if not self._sources:
            raise SystemExit(f"no photos in {folder}")
        self._rng = rng

    def make(self, *, killer: bool = False) -> bytes:
        source = self._rng.choice(self._sources)
        w, h = source.size
        scale = self._rng.uniform(0.55, 0.9)
        cw, ch = int(w * scale), int(h * scale)
        x, y = self._rng.randrange(w - cw + 1), self._rng.randrange(h - ch + 1)
        image = source.crop((x, y, x + cw, y + ch)).resize((1024, 768), Image.Resampling.BILINEAR)
        if self._rng.random() < 0.5:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out = io.BytesIO()
        image.save(out, "JPEG", quality=self._rng.randrange(82, 92), comment=DECODER_KILLER if killer else b"")
        return out.getvalue()


class Load:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.rng = random.Random(config.get("seed", 1))
        self.photos = Photos(Path(config["photos_dir"]), self.rng)
        # A saturation run cannot afford to make each photo as it goes (the load would measure itself):
        # it makes `photo_pool` of them first and reuses them (reuse detection then flags most reports).
        self.pool = [self.photos.make() for _ in range(config.get("photo_pool", 0))]
        self.clients = [httpx.AsyncClient(base_url=url, timeout=httpx.Timeout(15.0, connect=5.0),
                                          limits=httpx.Limits(max_connections=64))
                        for url in config["api_urls"]]
        self.stop_file = Path(config["stop_file"])
        self.progress = Path(config["progress"]).open("a", buffering=1)  # noqa: SIM115  (open for the whole run)
        self.sent = 0
        self.attempts = 0
        self.acked: list[dict[str, Any]] = []
        self.refused: list[dict[str, Any]] = []
        self.unanswered: list[dict[str, Any]] = []
        self.errors: dict[str, int] = {}
        self.accepts = 0
        self.accept_errors: dict[str, int] = {}
        self.stopped_at: float | None = None

    def stopping(self) -> bool:
        if self.stopped_at is None and self.stop_file.exists():
            self.stopped_at = time.monotonic()
        return self.stopped_at is not None

    def _error(self, kind: str) -> None:
        self._count(self.errors, kind)

    @staticmethod
    def _count(counts: dict[str, int], kind: str) -> None:
        counts[kind] = counts.get(kind, 0) + 1

    async def report(self, n: int, *, killer: bool) -> None:
        rider = self.config["riders"][n % len(self.config["riders"])]
        # A rider stays near their spot (tens of metres), so no report looks like impossible travel.
        lat = rider["lat"] + self.rng.uniform(-0.00015, 0.00015)
        lon = rider["lon"] + self.rng.uniform(-0.0002, 0.0002)
        meta = {"client_id": str(uuid.uuid4()), "category": self.rng.choice(CATEGORIES),
                "lat": round(lat, 6), "lon": round(lon, 6), "accuracy_m": 10.0, "position_source": "gps",
                "captured_at": (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()}
        if self.pool and not killer:
            photo = self.rng.choice(self.pool)
        else:
            photo = await asyncio.to_thread(self.photos.make, killer=killer)
        files = [("meta", ("meta.json", json.dumps(meta).encode(), "application/json")),
                 ("photo", ("p0.jpg", photo, "image/jpeg"))]
        headers = {"Authorization": f"Bearer {rider['token']}"}
        self.sent += 1
        began = time.monotonic()
        attempt = 0
        while True:
            client = self.clients[(n + attempt) % len(self.clients)]
            attempt += 1
            self.attempts += 1
            try:
                reply = await client.post("/api/v1/reports", headers=headers, files=files)
            except httpx.HTTPError as exc:
                self._error(type(exc).__name__)
            else:
                if reply.status_code in (200, 201):
                    self.acked.append({"client_id": meta["client_id"], "member_id": rider["member_id"],
                                       "report_id": reply.json()["id"], "status": reply.status_code,
                                       "attempts": attempt, "killer": killer})
                    # When, and how long the rider waited for it (resends included), one line per answer.
                    self.progress.write(f"{time.time():.3f} {time.monotonic() - began:.3f}\n")
                    return
                if reply.status_code not in RETRYABLE:
                    body = reply.json() if reply.headers.get("content-type", "").endswith("json") else {}
                    self.refused.append({"client_id": meta["client_id"], "status": reply.status_code,
                                         "code": body.get("code")})
                    return
                self._error(f"http_{reply.status_code}")
            if self.stopping() and time.monotonic() - self.stopped_at > self.config["resend_for_s"]:
                self.unanswered.append({"client_id": meta["client_id"], "member_id": rider["member_id"]})
                return
            # The outbox's backoff: quick at first, then every few seconds, with jitter.
            await asyncio.sleep(min(3.0, 0.2 * 2 ** min(attempt, 4)) * self.rng.uniform(0.7, 1.3))

    async def take_incidents(self, member: dict[str, Any]) -> None:
        headers = {"Authorization": f"Bearer {member['token']}"}
        n = 0
        while not self.stopping():
            await asyncio.sleep(1.0)
            client = self.clients[n % len(self.clients)]
            n += 1
            try:
                page = await client.get("/api/v1/incidents", params={"state": "dispatched", "limit": 50},
                                        headers=headers)
                if page.status_code != 200:
                    self._count(self.accept_errors, f"list_{page.status_code}")
                    continue
                for item in page.json()["items"]:
                    if item["id"] % 5 >= 3:  # two in five are left for the deadlines to find
                        continue
                    reply = await client.post(f"/api/v1/incidents/{item['id']}/accept", headers=headers)
                    if reply.status_code == 200:
                        self.accepts += 1
                    else:
                        self._count(self.accept_errors, f"accept_{reply.status_code}")
            except httpx.HTTPError as exc:
                self._count(self.accept_errors, type(exc).__name__)

    async def run(self) -> dict[str, Any]:
        rate = self.config["rate"]
        killers = self.config.get("killer_reports", 0)
        tasks: set[asyncio.Task[None]] = set()
        takers = [asyncio.create_task(self.take_incidents(m)) for m in self.config["grid_members"]]
        start = time.monotonic()
        n = 0
        while not self.stopping():
            # A steady rate whatever the answers' latency: tick on the schedule, not after each reply.
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            killer = killers > 0 and n % max(1, int(rate * 3)) == 7
            killers -= killer
            task = asyncio.create_task(self.report(n, killer=killer))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*list(tasks), *takers)
        for client in self.clients:
            await client.aclose()
        return {"sent": self.sent, "attempts": self.attempts, "acked": self.acked, "refused": self.refused,
                "unanswered": self.unanswered, "errors": self.errors, "accepts": self.accepts,
                "accept_errors": self.accept_errors}


def main(path: str) -> int:
    config = json.loads(Path(path).read_text())
    result = asyncio.run(Load(config).run())
    Path(config["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
