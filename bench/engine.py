"""Engine benchmark: imageshare's engine against naive Pillow and libvips, side by side.

Over 400 lines on purpose: one script runs every engine, round and report side by side,
so the figures it prints come from one process layout and one set of rules.

    make bench-engine                       # ../shared/corpus when present, else generated photos
    .venv/bin/python -m bench.engine --corpus DIR --rounds 3
    BENCH_BASELINE=<git rev> make bench-engine   # also the engine as it was at <rev>, in the same run

Every engine makes the same renditions (the standard set, then the standard
set plus one 400x400 ``fill``) as JPEG q85, progressive above 300 px as the
engine writes them, from the same bytes, and must produce identical sizes
(checked, reported). Each engine runs in its own worker process so that its
peak RSS is its own; the parent interleaves the work (photo by photo, engine
order rotated every photo) so that drift on the machine hits every engine
alike. The figure is CPU time (all threads) per photo, which is what a worker
pool pays for; wall time is printed too.

After the timed rounds, a quality pass (``--no-ssim`` skips it) asks every
engine once more for each photo's renditions, at JPEG quality 100 so that the
encoder's own loss does not count, and scores each against the reference of
tests/support/ssim.py (full decode, ICC to sRGB, orientation, one LANCZOS
resize to the same size): luma SSIM, minimum and mean per engine.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing as mp
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

STANDARD = [("large", 600, 600, "fit"), ("medium", 300, 300, "fit"), ("small", 100, 100, "fit")]
SPEC_SETS = {"standard": STANDARD, "standard+fill": [*STANDARD, ("sq", 400, 400, "fill")]}
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}


# --- the engines -----------------------------------------------------------------
def run_imageshare(data: bytes, SPECS, quality=85, engine=None):
    if engine is None:
        from thumbnails import engine

    specs = [engine.Spec(n, w, h, m) for n, w, h, m in SPECS]
    result = engine.render(data, specs, jpeg_quality=quality)
    return [(r.name, r.width, r.height, r.data) for r in result.renditions]


def run_baseline(data: bytes, SPECS, quality=85):
    """thumbnails/engine.py as it was at ``--baseline`` (loaded by the worker)."""
    return run_imageshare(data, SPECS, quality, engine=_BASELINE["module"])


_BASELINE: dict = {}


def load_baseline(source: str):
    """Import an engine from its source text, as a module of its own."""
    import importlib.util

    spec = importlib.util.spec_from_loader("_engine_baseline", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    exec(compile(source, "<baseline thumbnails/engine.py>", "exec"), module.__dict__)
    return module


def git_source(rev: str, path: str = "thumbnails/engine.py") -> str:
    import subprocess

    return subprocess.run(["git", "show", f"{rev}:{path}"], check=True, capture_output=True, text=True).stdout


def run_pillow_naive(data: bytes, SPECS, quality=85):
    """Full decode, one LANCZOS resize per size from the full image."""
    from PIL import Image, ImageOps

    im = Image.open(io.BytesIO(data))
    im = ImageOps.exif_transpose(im)
    im = im.convert("RGB")
    out = []
    for name, w, h, mode in SPECS:
        if mode == "fit":
            r = im.resize(_fit_size(im.width, im.height, w, h), Image.Resampling.LANCZOS)
        else:
            r = ImageOps.fit(im, _fill_size(im.width, im.height, w, h), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        r.save(buf, "JPEG", quality=quality, progressive=progressive(r.width, r.height))
        out.append((name, r.width, r.height, buf.getvalue()))
    return out


def progressive(w: int, h: int) -> bool:
    """Like for like: every engine writes progressive JPEGs where the engine does (sides over 300 px)."""
    return max(w, h) > 300


def _fit_size(w, h, bw, bh):
    """Round half up, as libvips' thumbnail does, so every engine agrees on sizes."""
    scale = min(bw / w, bh / h, 1.0)
    return max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))


def _fill_size(w, h, bw, bh):
    """The engine's fill never enlarges: a box larger than the source shrinks, same aspect, until it fits."""
    shrink = min(w / bw, h / bh, 1.0)
    return max(1, int(bw * shrink + 0.5)), max(1, int(bh * shrink + 0.5))


def _upright_size(pyvips, data: bytes) -> tuple[int, int]:
    probe = pyvips.Image.new_from_buffer(data, "")  # the header only
    w0, h0 = probe.width, probe.height
    if probe.get_typeof("orientation") and probe.get("orientation") in (5, 6, 7, 8):
        w0, h0 = h0, w0
    return w0, h0


def run_vips_thumbnail(data: bytes, SPECS, quality=85):
    """libvips' own recommended path: ``thumbnail_buffer`` once per size."""
    import pyvips

    out = []
    for name, w, h, mode in SPECS:
        if mode == "fit":
            im = pyvips.Image.thumbnail_buffer(data, w, height=h, size="down")
        else:
            fw, fh = _fill_size(*_upright_size(pyvips, data), w, h)
            im = pyvips.Image.thumbnail_buffer(data, fw, height=fh, crop="centre")
        buf = im.jpegsave_buffer(Q=quality, keep="none", interlace=progressive(im.width, im.height))
        out.append((name, im.width, im.height, buf))
    return out


def run_vips_decode_once(data: bytes, SPECS, quality=85):
    """One shrink-on-load to the largest size needed, then ``resize`` for the rest."""
    import pyvips

    w0, h0 = _upright_size(pyvips, data)
    SPECS = [(n, *_fill_size(w0, h0, w, h), m) if m == "fill" else (n, w, h, m) for n, w, h, m in SPECS]
    # The largest box any spec needs (fill needs to cover its box).
    need = max(
        max(_fit_size(w0, h0, w, h)) if m == "fit" else max(w0 * max(w / w0, h / h0), h0 * max(w / w0, h / h0))
        for _, w, h, m in SPECS
    )
    scale = min(need / max(w0, h0), 1.0)
    tw, th = max(1, round(w0 * scale)), max(1, round(h0 * scale))
    # Render the shrunk image to memory once: thumbnail_buffer reads sequentially,
    # and every rendition below reads it again.
    base = pyvips.Image.thumbnail_buffer(data, tw, height=th, size="down").copy_memory()
    out = []
    for name, w, h, mode in SPECS:
        if mode == "fit":
            fw, fh = _fit_size(w0, h0, w, h)
            im = base.resize(fw / base.width, vscale=fh / base.height, kernel="lanczos3")
        else:
            s = max(w / base.width, h / base.height)
            im = base.resize(s, kernel="lanczos3")
            im = im.crop((im.width - w) // 2, (im.height - h) // 2, w, h)
        buf = im.jpegsave_buffer(Q=quality, keep="none", interlace=progressive(im.width, im.height))
        out.append((name, im.width, im.height, buf))
    return out


ENGINES = {
    "imageshare": run_imageshare,
    "pillow-naive": run_pillow_naive,
    "vips-thumbnail": run_vips_thumbnail,
    "vips-decode-once": run_vips_decode_once,
}
BASELINE = "imageshare-before"  # the engine at --baseline, when asked for
LABELS = {
    "pillow-naive": "naive Pillow",
    "vips-thumbnail": "pyvips thumbnail-per-size",
    "vips-decode-once": "pyvips decode-once",
}


def ask(conn, proc, msg, timeout=300):
    """Send one request to an engine process and wait (bounded) for its reply."""
    conn.send(msg)
    if not conn.poll(timeout):
        raise RuntimeError(f"engine process {proc.name} did not answer in {timeout}s")
    reply = conn.recv()
    if reply[0] == "error":
        raise RuntimeError(f"{proc.name} failed on {msg}: {reply[1]}")
    return reply


def _reset_peak_rss() -> None:
    # A spawned child starts with its parent's peak RSS (kept across fork and
    # exec); writing 5 to clear_refs resets the peak on Linux.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(name: str, conn, baseline_source: str | None = None) -> None:
    """Run one engine on the photos the parent sends.

    A timed request ``(path, spec_set)`` is answered with (sizes, cpu ms, wall
    ms); a quality request ``(path, spec_set, quality)`` with the renditions
    themselves.
    """
    if name == BASELINE:
        _BASELINE["module"] = load_baseline(baseline_source)
        fn = run_baseline
    else:
        fn = ENGINES[name]
    _reset_peak_rss()
    paths = {}
    while True:
        msg = conn.recv()
        if msg is None:
            conn.send(("rss", _peak_rss_mb()))
            return
        path, spec_set, *quality = msg
        data = paths.setdefault(path, Path(path).read_bytes())
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            out = fn(data, SPEC_SETS[spec_set], *quality)
        except Exception as exc:  # report, so the parent does not wait forever
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        cpu, wall = (time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000
        if quality:
            conn.send((out,))
        else:
            conn.send(([(n, w, h) for n, w, h, _ in out], cpu, wall))


# --- the corpus ------------------------------------------------------------------
def generated_corpus(folder: Path) -> list[Path]:
    """Photo-like images (smooth gradients plus noise) from 0.3 to 12 megapixels."""
    from PIL import Image, ImageFilter

    paths = []
    for i, (w, h) in enumerate([(640, 480), (1600, 1200), (2560, 1600), (3000, 4000), (4032, 3024)]):
        noise = Image.effect_noise((w // 4, h // 4), 40 + 10 * i).resize((w, h), Image.Resampling.BICUBIC)
        grad = Image.linear_gradient("L").resize((w, h))
        im = Image.merge("RGB", (noise, grad, Image.eval(grad, lambda v: 255 - v))).filter(ImageFilter.SMOOTH)
        p = folder / f"generated_{w}x{h}.jpg"
        im.save(p, "JPEG", quality=90)
        paths.append(p)
    return paths


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, help="folder of photos (default: generated ones)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the corpus (default 3)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated subset")
    parser.add_argument("--specs", choices=[*SPEC_SETS, "both"], default="both")
    parser.add_argument(
        "--baseline",
        default=os.environ.get("BENCH_BASELINE") or None,
        metavar="REV",
        help=f"also run thumbnails/engine.py as it was at git REV, as '{BASELINE}' (env BENCH_BASELINE)",
    )
    parser.add_argument("--no-ssim", action="store_true", help="skip the quality (SSIM) pass")
    args = parser.parse_args(argv)

    names = [n for n in args.engines.split(",") if n]
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError) as exc:
        print(f"pyvips unavailable ({exc}); install requirements-bench.txt. Running without libvips.")
        names = [n for n in names if not n.startswith("vips")]
    baseline_source = None
    if args.baseline:
        baseline_source = git_source(args.baseline)
        names.insert(1, BASELINE)

    tmp = None
    if args.corpus:
        photos = sorted(p for p in args.corpus.iterdir() if p.suffix.lower() in EXTENSIONS)
    else:
        tmp = tempfile.TemporaryDirectory()
        photos = generated_corpus(Path(tmp.name))
    if not photos:
        print(f"no photos in {args.corpus}", file=sys.stderr)
        return 2

    ctx = mp.get_context("spawn")
    pipes = {}
    procs = {}
    for n in names:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=worker, args=(n, child, baseline_source), daemon=True, name=n)
        p.start()
        pipes[n] = parent
        procs[n] = p

    # One warm-up pass (imports, first-call costs) that is not counted.
    for n in names:
        ask(pipes[n], procs[n], (str(photos[0]), "standard"))
    sets = list(SPEC_SETS) if args.specs == "both" else [args.specs]
    results = {}
    for spec_set in sets:
        results[spec_set] = measure(names, pipes, procs, photos, spec_set, args.rounds)
    # Peak RSS of the timed work, before the quality pass (which holds renditions).
    rss = {n: ask(pipes[n], procs[n], None)[1] for n in names}
    for p in procs.values():
        p.join(5)
    quality = {}
    if not args.no_ssim:
        quality = quality_pass(names, photos, sets, ctx, baseline_source)

    print(f"\ncorpus: {args.corpus or 'generated'} ({len(photos)} photos) x {args.rounds} rounds, JPEG q85")
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; figures are CPU ms per photo")
    if args.baseline:
        print(f"{BASELINE}: thumbnails/engine.py at {args.baseline}")
    ok = True
    for spec_set in sets:
        ok &= report(spec_set, names, photos, rss, *results[spec_set], quality.get(spec_set))
    if tmp:
        tmp.cleanup()
    return 0 if ok else 1


def measure(names, pipes, procs, photos, spec_set, rounds):
    """Interleave: photo by photo, every engine, the engine order rotated each photo."""
    cpu = {n: [] for n in names}
    wall = {n: [] for n in names}
    per_photo = {n: {} for n in names}
    mismatches = []
    k = 0
    for _ in range(rounds):
        for photo in photos:
            order = names[k % len(names) :] + names[: k % len(names)]
            k += 1
            sizes = {}
            for n in order:
                got, c, w = ask(pipes[n], procs[n], (str(photo), spec_set))
                cpu[n].append(c)
                wall[n].append(w)
                per_photo[n].setdefault(photo.name, []).append(c)
                sizes[n] = sorted(tuple(x) for x in got)
            for n in names[1:]:
                if sizes[n] != sizes[names[0]]:
                    mismatches.append((photo.name, n, sizes[n], sizes[names[0]], off_by_one(sizes[n], sizes[names[0]])))
    return cpu, wall, per_photo, mismatches


def quality_pass(names, photos, sets, ctx, baseline_source):
    """SSIM of every engine's renditions (JPEG q100) against the slow reference, per spec set.

    Returns {spec_set: {engine: [(ssim, photo, rendition, mode), ...]}}. Fresh
    worker processes, one engine at a time, so the timed figures above are
    untouched and the parent holds one photo's reference at a time.
    """
    from tests.support.ssim import reference, ssim, upright_srgb

    scores = {s: {n: [] for n in names} for s in sets}
    pipes, procs = {}, {}
    for n in names:
        parent, child = ctx.Pipe()
        procs[n] = ctx.Process(target=worker, args=(n, child, baseline_source), daemon=True, name=f"{n}-q")
        procs[n].start()
        pipes[n] = parent
    for photo in photos:
        upright = upright_srgb(photo.read_bytes())
        refs = {}
        for spec_set in sets:
            modes = {name: mode for name, _, _, mode in SPEC_SETS[spec_set]}
            for n in names:
                (out,) = ask(pipes[n], procs[n], (str(photo), spec_set, 100))
                for name, w, h, data in out:
                    key = (w, h, modes[name])
                    if key not in refs:
                        refs[key] = reference(upright, (w, h), modes[name])
                    im = Image.open(io.BytesIO(data))
                    scores[spec_set][n].append((ssim(im, refs[key]), photo.name, name, modes[name]))
        upright.close()
    for n in names:
        ask(pipes[n], procs[n], None)
        procs[n].join(5)
    return scores


def off_by_one(a, b) -> bool:
    """Same renditions, each within one pixel (libvips' thumbnail rounds from its shrunk image)."""
    return len(a) == len(b) and all(
        x[0] == y[0] and abs(x[1] - y[1]) <= 1 and abs(x[2] - y[2]) <= 1 for x, y in zip(a, b, strict=True)
    )


def report(spec_set, names, photos, rss, cpu, wall, per_photo, mismatches, quality=None) -> bool:
    print(f"\n== {spec_set}: {', '.join(f'{n} {w}x{h} {m}' for n, w, h, m in SPEC_SETS[spec_set])}")
    header = f"{'engine':<18}{'mean':>8}{'median':>8}{'p95':>8}{'wall med':>10}{'peak RSS MB':>13}"
    print(header)
    print("-" * len(header))
    for n in names:
        print(
            f"{n:<18}{statistics.mean(cpu[n]):>8.1f}{statistics.median(cpu[n]):>8.1f}{pct(cpu[n], 0.95):>8.1f}"
            f"{statistics.median(wall[n]):>10.1f}{rss[n]:>13.0f}"
        )
    if "imageshare" in names:
        ours = statistics.mean(cpu["imageshare"])
        ours_med = statistics.median(cpu["imageshare"])
        for n in names:
            if n != "imageshare":
                label = LABELS.get(n, n)
                print(
                    f"imageshare / {label} (mean): {ours / statistics.mean(cpu[n]):.2f}"
                    f"   (median: {ours_med / statistics.median(cpu[n]):.2f})"
                )
        print("per photo, median CPU ms:")
        print(f"  {'photo':<40}" + "".join(f"{n[:17]:>18}" for n in names))
        for photo in photos:
            row = "".join(f"{statistics.median(per_photo[n][photo.name]):>18.1f}" for n in names)
            print(f"  {photo.name:<40}{row}")
    unique = {(m[0], m[1]): m for m in mismatches}.values()
    if not unique:
        print("output sizes identical across engines: yes")
    else:
        print(f"output sizes identical across engines: no, {len(unique)} photo/engine pairs differ:")
        for photo, n, got, ref, near_ in unique:
            print(f"  {photo} {n}: {got} vs imageshare {ref}{' (within 1 px)' if near_ else ''}")
    if quality:
        print("SSIM against the reference (luma; renditions at JPEG q100; reference: full decode, one LANCZOS):")
        print(f"  {'engine':<18}{'mean':>7}{'min fit':>9}  {'where':<36}{'min fill':>9}  where")
        for n in names:
            scores = quality[n]
            fit = [x for x in scores if x[3] == "fit"]
            fill = [x for x in scores if x[3] == "fill"]
            mean = statistics.mean(x[0] for x in scores)
            line = f"  {n:<18}{mean:>7.4f}"
            for group in (fit, fill):
                if group:
                    low = min(group)
                    line += f"{low[0]:>9.4f}  {low[1][:28] + ' ' + low[2]:<36}"
            print(line.rstrip())
    return all(m[4] for m in mismatches)


if __name__ == "__main__":
    sys.exit(main())
