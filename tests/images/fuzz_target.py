"""The atheris harness for the worker's decode-and-rebuild (`pipeline.normalise`), run as a subprocess.

`python -m tests.images.fuzz_target SEEDS_DIR --artifacts DIR --limits JSON -- [libFuzzer flags]`;
test_fuzz_photos.py starts it, because atheris.Setup/Fuzz own the process and end it with sys.exit.

In-process, not through `PhotoSandbox`: atheris learns from coverage of the code it runs, and the
sandbox would run Pillow in a child it cannot see. So this process becomes the sandbox's child
instead: `sandbox._child_init` gives it the same address-space limit, allocator tuning and SIGXCPU
handler, and every input goes through `sandbox._call(pipeline.normalise, ...)`, the very function the
child runs for the worker, with the same per-photo CPU limit. What the sandbox adds on top (a pipe,
the wall-clock timeout, a fresh process after a crash) is libFuzzer's to play here: `-timeout` is
the sandbox's wall-clock timeout, and a crash is a finding.

The Pillow limits in force (MAX_IMAGE_PIXELS and the rest) are compared with those measured in a real
sandbox child (`pillow_limits`, passed in as --limits) before the first input: a run with other limits
would fuzz a different program.

A finding is anything the worker must never see: an exception other than PhotoFailed, a native crash,
PhotoFailed('cpu_limit') (the sandbox would have had to stop a spinning decoder), a run over
`-timeout`, or a derivative that carries metadata or a smuggled payload.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings


def pillow_limits(_data: bytes = b"") -> dict[str, object]:
    """Pillow's safety limits and ours, and the address-space limit, in this process.

    The test runs it in a sandbox child (hence the unused bytes argument) and passes the answer in.
    PIL is imported here, not at the top: in the harness it must be imported under instrumentation.
    """
    import resource

    from PIL import Image, ImageFile, PngImagePlugin

    from gridrider.images import pipeline, sniff

    return {
        "Image.MAX_IMAGE_PIXELS": Image.MAX_IMAGE_PIXELS,
        "ImageFile.LOAD_TRUNCATED_IMAGES": ImageFile.LOAD_TRUNCATED_IMAGES,
        "ImageFile.SAFEBLOCK": ImageFile.SAFEBLOCK,
        "ImageFile.MAXBLOCK": ImageFile.MAXBLOCK,
        "PngImagePlugin.MAX_TEXT_CHUNK": PngImagePlugin.MAX_TEXT_CHUNK,
        "PngImagePlugin.MAX_TEXT_MEMORY": PngImagePlugin.MAX_TEXT_MEMORY,
        "sniff.MAX_PIXELS": sniff.MAX_PIXELS,
        "pipeline.MAX_JPEG_SCANS": pipeline.MAX_JPEG_SCANS,
        "RLIMIT_AS": resource.getrlimit(resource.RLIMIT_AS)[0],
    }


def sniff_outcome(data: bytes) -> str:
    """'accepted' or intake's refusal code; run in a sandbox child to replay a regression case."""
    from gridrider.images.sniff import PhotoRejected, sniff_photo

    try:
        sniff_photo(data)
    except PhotoRejected as rejected:
        return rejected.code
    return "accepted"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("seeds")
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--limits", required=True, help="JSON of pillow_limits() from a sandbox child")
    parser.add_argument("--memory-mb", type=int, required=True)
    parser.add_argument("--cpu-seconds", type=int, required=True)
    ours, libfuzzer = sys.argv[1:], []
    if "--" in ours:  # libFuzzer's own flags follow "--"
        ours, libfuzzer = ours[: ours.index("--")], ours[ours.index("--") + 1 :]
    args = parser.parse_args(ours)

    import atheris

    # Coverage of Pillow's Python side (plugins, EXIF/TIFF parsing) and ours; the C decoders are not
    # instrumented (Pillow's wheels are not built for it) and are fuzzed blind.
    if "PIL" in sys.modules:
        raise RuntimeError("PIL was imported before instrumentation: atheris would not see it")
    with atheris.instrument_imports(include=["PIL", "gridrider"]):
        from PIL import Image, JpegImagePlugin, PngImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401

        from gridrider.images import pipeline, sandbox
    from tests.images.hostile_corpus import assert_clean_derivative

    sandbox._child_init(args.memory_mb)
    expected = json.loads(args.limits)
    found = json.loads(json.dumps(pillow_limits()))
    if found != expected:
        print(f"fuzz_target: limits differ from the sandbox child's: {found} != {expected}", file=sys.stderr)
        sys.exit(3)
    # Pillow warns about every odd EXIF tag; thousands of warnings a second only slow the run down.
    # (The decompression-bomb warning stays an error: normalise makes it one inside its own call.)
    warnings.simplefilter("ignore")

    def one_input(data: bytes) -> None:
        try:
            result = sandbox._call(pipeline.normalise, data, args.cpu_seconds)
        except pipeline.PhotoFailed as failure:
            if failure.reason == "cpu_limit":
                raise AssertionError(f"the decoder spun past the sandbox's CPU limit: {failure}") from None
            return
        assert_clean_derivative(result.display, pipeline.DISPLAY_MAX_PX)
        assert_clean_derivative(result.thumb, pipeline.THUMB_MAX_PX)

    argv = [sys.argv[0], f"-artifact_prefix={args.artifacts.rstrip('/')}/", *libfuzzer, args.seeds]
    atheris.Setup(argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
