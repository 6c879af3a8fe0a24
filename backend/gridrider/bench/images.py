"""`gridrider bench images`: CPU per photo of the normalise pipeline (display + thumb + dHash).

Fixed load: two JPEGs made from one real street photo of ../shared/photos/street/ — a 12 MP phone
photo (upscaled to 4000x3000 with Lanczos, saved at q92) and a 1600 px client-resized one (q80, as
the PWA sends) — each normalised in this process after a warm-up, in interleaved repetitions
(the order alternates every round), timing CPU with `time.process_time` and wall time with
`time.perf_counter`. When pyvips imports, libvips' `thumbnail_buffer` producing the same outputs
(display JPEG q80 <= 1600 px, thumbnail JPEG q75 <= 320 px, dHash of the thumbnail) runs in the
same rounds. Then the display's PSNR against a full-decode + Lanczos reference, and what the
sandbox adds (process start-up, per-photo IPC and the child's own CPU, restart after a crash).

The goal figures are CPU time of `normalise` in this process, which is the work the sandbox's child
does per photo (same function, allocator tuned the same way); the sandbox line adds the child's CPU
per call as measured in the child, IPC included. CPU time still rises when the machine is busy
(shared caches, other processes on the same cores: 15 ms became 18 ms at p50 for the 1600 px photo
with four memory-copying processes on these 2 cores), so the load average is printed with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageChops, ImageStat, features

from gridrider.bench import bench, machine_line, percentile
from gridrider.images import pipeline
from gridrider.images.sandbox import tune_allocator

SHARED_PHOTOS = Path(__file__).resolve().parents[3].parent / "shared" / "photos"


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def _psnr(a: Image.Image, b: Image.Image) -> float:
    sum2 = ImageStat.Stat(ImageChops.difference(a.convert("RGB"), b.convert("RGB"))).sum2
    mse = sum(sum2) / (3 * a.width * a.height)
    return math.inf if mse == 0 else 10 * math.log10(255**2 / mse)


def _mosaic(paths: list[Path]) -> bytes:
    """4000x3000 of real photos at their native detail (640x480 tiles): a hard case for resampling."""
    canvas = Image.new("RGB", (4000, 3000))
    tiles = [Image.open(p).convert("RGB").resize((640, 480)) for p in paths]
    for index, (x, y) in enumerate((x, y) for y in range(0, 3000, 480) for x in range(0, 4000, 640)):
        canvas.paste(tiles[index % len(tiles)], (x, y))
    return _jpeg(canvas, 92)


def _vips_normalise() -> Callable[[bytes], tuple[bytes, bytes, int]] | None:
    try:
        import pyvips  # type: ignore[import-not-found]  # optional, not a dependency
    except ImportError:
        return None

    def run(data: bytes) -> tuple[bytes, bytes, int]:
        display = pyvips.Image.thumbnail_buffer(data, pipeline.DISPLAY_MAX_PX, size="down")  # EXIF-rotated
        display_jpeg = display.jpegsave_buffer(Q=pipeline.DISPLAY_QUALITY, strip=True)
        thumb = display.thumbnail_image(pipeline.THUMB_MAX_PX, size="down")
        thumb_jpeg = thumb.jpegsave_buffer(Q=pipeline.THUMB_QUALITY, strip=True)
        pixels = thumb.colourspace("b-w").extract_band(0).cast("uchar")
        grey = Image.frombytes("L", (pixels.width, pixels.height), pixels.write_to_memory())
        return display_jpeg, thumb_jpeg, pipeline.dhash64(grey)

    return run


def _load_average() -> str:
    try:
        return "/".join(f"{value:.1f}" for value in os.getloadavg())  # 1, 5 and 15 minutes
    except OSError:
        return "unknown"


def _line(label: str, cpu: list[float], wall: list[float], goal_ms: float | None = None) -> str:
    cpu_ms, wall_ms = sorted(x * 1000 for x in cpu), sorted(x * 1000 for x in wall)
    text = (
        f"{label}: CPU mean {statistics.fmean(cpu_ms):.1f} ms, p50 {percentile(cpu_ms, 0.5):.1f}, "
        f"p90 {percentile(cpu_ms, 0.9):.1f}, min {cpu_ms[0]:.1f}; wall p50 {percentile(wall_ms, 0.5):.1f} ms"
    )
    if goal_ms is not None:
        text += f" (goal <= {goal_ms:.0f} ms CPU: {'met' if percentile(cpu_ms, 0.5) <= goal_ms else 'MISSED'} at p50)"
    return text


def _child_cpu_seconds(data: bytes) -> float:
    """CPU seconds the calling process has used so far; run in the sandbox's child by `PhotoSandbox.run`."""
    return time.process_time()


async def _sandbox_figures(data: bytes, reps: int) -> str:
    from gridrider.images.pipeline import PhotoFailed
    from gridrider.images.sandbox import PhotoSandbox, _crash_for_tests

    box = PhotoSandbox()
    try:
        began = time.perf_counter()
        await box.start()
        start_s = time.perf_counter() - began
        await box.normalise(data)
        walls, child_cpu = [], []
        for _ in range(reps):
            child_before = await box.run(_child_cpu_seconds, b"")
            began = time.perf_counter()
            await box.normalise(data)
            walls.append(time.perf_counter() - began)
            # The child's CPU between the two probes: unpickling the upload, normalise, pickling the
            # results, the rlimit calls around them and one probe's own call (a slight overestimate).
            child_cpu.append(await box.run(_child_cpu_seconds, b"") - child_before)
        began = time.perf_counter()
        with contextlib.suppress(PhotoFailed):
            await box.run(_crash_for_tests, b"")
        await box.normalise(data)
        after_crash_s = time.perf_counter() - began
    finally:
        await box.close()
    walls.sort()
    child_cpu.sort()
    return (
        f"sandbox: start-up of one child (spawn + imports) {start_s * 1000:.0f} ms wall; "
        f"1600 px photo through it p50 {percentile(walls, 0.5) * 1000:.1f} ms wall, "
        f"{percentile(child_cpu, 0.5) * 1000:.1f} ms CPU in the child (normalise + IPC); "
        f"crash + next photo (new child) {after_crash_s * 1000:.0f} ms wall"
    )


@bench("images")
def bench_images(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="gridrider bench images")
    parser.add_argument("--reps", type=int, default=30, help="measured repetitions per photo (interleaved)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured repetitions per photo first")
    parser.add_argument("--photos", type=Path, default=SHARED_PHOTOS, help="the shared real photos folder")
    args = parser.parse_args(argv)

    street = sorted((args.photos / "street").glob("*.jpg"))
    if not street:
        print(f"no photos under {args.photos / 'street'} (see the project README)")
        return 2
    with Image.open(street[0]) as opened:
        source = opened.convert("RGB")
    fixtures = {
        "12 MP phone JPEG 4000x3000": _jpeg(source.resize((4000, 3000), Image.Resampling.LANCZOS), 92),
        "1600 px client JPEG 1600x1200": _jpeg(source.resize((1600, 1200), Image.Resampling.LANCZOS), 80),
    }
    goals = {"12 MP phone JPEG 4000x3000": 100.0, "1600 px client JPEG 1600x1200": 25.0}
    vips = _vips_normalise()
    tuned = tune_allocator()  # as the sandbox's child process does

    print(machine_line())
    sizes = ", ".join(f"{name} {len(data) // 1024} KiB" for name, data in fixtures.items())
    print(
        f"load: {street[0].name} from {args.photos / 'street'} as {sizes}; normalise() = decode (JPEG draft) + "
        f"display JPEG q{pipeline.DISPLAY_QUALITY} <= {pipeline.DISPLAY_MAX_PX} px + thumb JPEG "
        f"q{pipeline.THUMB_QUALITY} <= {pipeline.THUMB_MAX_PX} px + dHash; {args.warmup} warm-up then "
        f"{args.reps} interleaved repetitions each, in this process (one core; glibc allocator "
        f"{'tuned as in the sandbox child' if tuned else 'NOT tuned (not glibc?)'}); Pillow {Image.__version__}, "
        f"libjpeg-turbo {features.version('libjpeg_turbo')}; "
        + ("pyvips in the same rounds" if vips else "pyvips not installed: libvips not measured")
        + f"; load average {_load_average()} at the start"
    )

    runners: dict[str, Callable[[bytes], object]] = {"pillow": pipeline.normalise}
    if vips is not None:
        runners["libvips"] = vips
    cpu: dict[tuple[str, str], list[float]] = {(r, f): [] for r in runners for f in fixtures}
    wall: dict[tuple[str, str], list[float]] = {(r, f): [] for r in runners for f in fixtures}
    order = [(r, f) for f in fixtures for r in runners]
    for _ in range(args.warmup):
        for runner, fixture in order:
            runners[runner](fixtures[fixture])
    for rep in range(args.reps):
        for runner, fixture in order if rep % 2 == 0 else reversed(order):
            data = fixtures[fixture]
            c0, w0 = time.process_time(), time.perf_counter()
            runners[runner](data)
            cpu[runner, fixture].append(time.process_time() - c0)
            wall[runner, fixture].append(time.perf_counter() - w0)
    print(f"load average {_load_average()} after the rounds ({os.cpu_count()} cores: near or over that, CPU runs high)")
    for runner, fixture in order:
        goal = goals[fixture] if runner == "pillow" else None
        print(_line(f"{runner} {fixture}", cpu[runner, fixture], wall[runner, fixture], goal))

    for fixture, data in fixtures.items():
        result = pipeline.normalise(data)
        print(
            f"outputs {fixture}: display {result.width}x{result.height} {result.display_type} "
            f"{len(result.display) // 1024} KiB, thumb {len(result.thumb) // 1024} KiB, dhash {result.dhash}"
        )

    cases = {"12 MP phone (upscaled real photo)": fixtures["12 MP phone JPEG 4000x3000"]}
    cases["12 MP mosaic of the 24 real photos at native detail"] = _mosaic(
        street + sorted((args.photos / "cameras").glob("*.jpg"))
    )
    for label, data in cases.items():
        with Image.open(io.BytesIO(data)) as full:
            full.load()  # no draft
            reference = full.convert("RGB").resize((1600, 1200), Image.Resampling.LANCZOS)
        pixels = pipeline._display_pixels(data)
        with Image.open(io.BytesIO(pipeline.normalise(data).display)) as shown:
            delivered = shown.convert("RGB")
        encoded_reference = Image.open(io.BytesIO(_jpeg(reference, pipeline.DISPLAY_QUALITY))).convert("RGB")
        print(
            f"PSNR vs full decode + Lanczos, {label}: display JPEG {_psnr(delivered, reference):.1f} dB "
            f"(its pixels before encoding {_psnr(pixels, reference):.1f} dB; the reference itself through "
            f"JPEG q{pipeline.DISPLAY_QUALITY} {_psnr(encoded_reference, reference):.1f} dB)"
        )

    print(asyncio.run(_sandbox_figures(fixtures["1600 px client JPEG 1600x1200"], reps=20)))
    return 0
