"""Analysis benchmark: the faces stage (decode, cascades, mask verdict, annotated JPEG) beside the resize engine.

    make bench-analysis                      # ../shared/corpus when present, else generated photos
    .venv/bin/python -m bench.analysis --corpus DIR --rounds 3

One process, one thread for OpenCV (as the analysis worker runs it): the
figure is CPU time per photo, so images/s/core = 1000 / (CPU ms per photo).
The resize engine's standard set (thumbnails.engine.render) is timed on the
same photos in the same rounds, for the comparison. Memory: the process's RSS
before OpenCV is imported, after the import, and after the cascades are
loaded (what one analysis worker process pays for the model), and its peak.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}
PORTRAIT = Path(__file__).resolve().parents[1] / "tests" / "support" / "portrait_grace_hopper.jpg"


def rss_mb() -> tuple[float, float]:
    """(current, peak) resident set size of this process, MB, from /proc."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def generated_corpus() -> list[tuple[str, bytes]]:
    """Without ../shared/corpus: the test portrait, and two generated photos without people."""
    import numpy as np
    from PIL import Image

    photos = [(PORTRAIT.name, PORTRAIT.read_bytes())]
    rng = np.random.default_rng(3)
    for w, h in ((4000, 3000), (1920, 1280)):
        small = rng.integers(0, 256, (h // 40, w // 40, 3), dtype=np.uint8)
        im = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=88)
        photos.append((f"generated_{w}x{h}.jpg", buf.getvalue()))
    return photos


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, help="a folder of photos (default: generated)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    from thumbnails import engine, processors

    if args.corpus:
        files = sorted(p for p in args.corpus.iterdir() if p.suffix.lower() in EXTENSIONS)
        photos = [(p.name, p.read_bytes()) for p in files]
        source = str(args.corpus)
    else:
        photos, source = generated_corpus(), "generated photos (no ../shared/corpus)"
    rss_before, _ = rss_mb()
    t = time.perf_counter()
    from thumbnails.processors import faces

    rss_import, _ = rss_mb()
    faces._cascades()
    load_ms = (time.perf_counter() - t) * 1000
    rss_loaded, _ = rss_mb()
    processor = faces.FaceProcessor()

    analysis_cpu: dict[str, list[float]] = {name: [] for name, _ in photos}
    resize_cpu: dict[str, list[float]] = {name: [] for name, _ in photos}
    found: dict[str, int] = {}
    stages: dict[str, list[float]] = {"decode": [], "detect": [], "classify": [], "annotate": []}
    for _ in range(args.rounds):
        for name, data in photos:
            c0 = time.process_time()
            decoded = processors.decode(data, max_pixels=200_000_000)
            result = processor.analyse(decoded.rgb)
            a0 = time.perf_counter()
            faces.annotate(decoded.rgb, result.data["faces"])
            annotate_ms = (time.perf_counter() - a0) * 1000
            analysis_cpu[name].append((time.process_time() - c0) * 1000)
            found[name] = result.data["num_faces"]
            stages["decode"].append(decoded.ms)
            stages["detect"].append(result.timings["detect"])
            stages["classify"].append(result.timings["classify"])
            stages["annotate"].append(annotate_ms)
            c1 = time.process_time()
            engine.render(data, engine.STANDARD_SPECS, max_pixels=200_000_000)
            resize_cpu[name].append((time.process_time() - c1) * 1000)
    _, peak = rss_mb()
    verdict = faces.mask_classifier()([])

    print(f"Analysis benchmark: {len(photos)} photos from {source}, {args.rounds} rounds, one core")
    print(f"model: {faces.MODEL} (OpenCV {faces.cv2.__version__}, {faces.cv2.getNumThreads()} thread)")
    print(f"masks: {verdict.model} {verdict.version}" + (f" ({verdict.reason})" if verdict.reason else ""))
    print(f"params: {faces.Params()}")
    print()
    print(f"{'photo':40s} {'faces':>5s} {'analysis ms':>12s} {'resize ms':>10s}")
    for name, _ in photos:
        a, r = statistics.median(analysis_cpu[name]), statistics.median(resize_cpu[name])
        print(f"{name:40s} {found[name]:5d} {a:12.1f} {r:10.1f}")
    a_mean = statistics.mean(statistics.median(v) for v in analysis_cpu.values())
    r_mean = statistics.mean(statistics.median(v) for v in resize_cpu.values())
    print()
    print("CPU per photo (median of rounds, mean over photos):")
    rate = "{:7.1f} ms = {:5.2f} images/s/core"
    print("  analysis (decode <=1024 px, cascades, masks, annotated JPEG): " + rate.format(a_mean, 1000 / a_mean))
    print("  resize (the engine's standard set, for comparison):           " + rate.format(r_mean, 1000 / r_mean))
    print("  analysis stages, wall ms (median over all): " + ", ".join(
        f"{k} {statistics.median(v):.1f}" for k, v in stages.items()
    ))  # fmt: skip
    print()
    print("Memory (RSS of this process):")
    print(f"  before OpenCV:                {rss_before:7.1f} MB")
    print(f"  after import cv2:             {rss_import:7.1f} MB (+{rss_import - rss_before:.1f})")
    print(f"  after loading both cascades:  {rss_loaded:7.1f} MB (+{rss_loaded - rss_import:.1f}; {load_ms:.0f} ms)")
    print(f"  peak while analysing:         {peak:7.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
