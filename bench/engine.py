"""Engine benchmark: imageshare's engine against naive Pillow and libvips, side by side.

    make bench-engine                       # ../shared/corpus when present, else generated photos
    .venv/bin/python -m bench.engine --corpus DIR --rounds 3

Every engine makes the same renditions (the standard set, then the standard
set plus one 400x400 ``fill``) as JPEG q85, progressive above 300 px as the
engine writes them, from the same bytes, and must produce identical sizes
(checked, reported). Each engine runs in its own worker process so that its
peak RSS is its own; the parent interleaves the work (photo by photo, engine
order rotated every photo) so that drift on the machine hits every engine
alike. The figure is CPU time (all threads) per photo, which is what a worker
pool pays for; wall time is printed too.
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

STANDARD = [("large", 600, 600, "fit"), ("medium", 300, 300, "fit"), ("small", 100, 100, "fit")]
SPEC_SETS = {"standard": STANDARD, "standard+fill": [*STANDARD, ("sq", 400, 400, "fill")]}
EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}


# --- the engines -----------------------------------------------------------------
def run_imageshare(data: bytes, SPECS):
    from thumbnails import engine

    specs = [engine.Spec(n, w, h, m) for n, w, h, m in SPECS]
    result = engine.render(data, specs, jpeg_quality=85)
    return [(r.name, r.width, r.height) for r in result.renditions]


def run_pillow_naive(data: bytes, SPECS):
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
            r = ImageOps.fit(im, (w, h), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        r.save(buf, "JPEG", quality=85, progressive=progressive(r.width, r.height))
        out.append((name, r.width, r.height))
    return out


def progressive(w: int, h: int) -> bool:
    """Like for like: every engine writes progressive JPEGs where the engine does (sides over 300 px)."""
    return max(w, h) > 300


def _fit_size(w, h, bw, bh):
    """Round half up, as libvips' thumbnail does, so every engine agrees on sizes."""
    scale = min(bw / w, bh / h, 1.0)
    return max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))


def run_vips_thumbnail(data: bytes, SPECS):
    """libvips' own recommended path: ``thumbnail_buffer`` once per size."""
    import pyvips

    out = []
    for name, w, h, mode in SPECS:
        if mode == "fit":
            im = pyvips.Image.thumbnail_buffer(data, w, height=h, size="down")
        else:
            im = pyvips.Image.thumbnail_buffer(data, w, height=h, crop="centre")
        im.jpegsave_buffer(Q=85, keep="none", interlace=progressive(im.width, im.height))
        out.append((name, im.width, im.height))
    return out


def run_vips_shrink_once(data: bytes, SPECS):
    """One shrink-on-load to the largest size needed, then ``resize`` for the rest."""
    import pyvips

    probe = pyvips.Image.new_from_buffer(data, "")
    w0, h0 = probe.width, probe.height
    if probe.get_typeof("orientation") and probe.get("orientation") in (5, 6, 7, 8):
        w0, h0 = h0, w0
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
        im.jpegsave_buffer(Q=85, keep="none", interlace=progressive(im.width, im.height))
        out.append((name, im.width, im.height))
    return out


ENGINES = {
    "imageshare": run_imageshare,
    "pillow-naive": run_pillow_naive,
    "vips-thumbnail": run_vips_thumbnail,
    "vips-shrink-once": run_vips_shrink_once,
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


def worker(name: str, conn) -> None:
    """Run one engine on the photos the parent sends; reply with (sizes, cpu ms, wall ms)."""
    fn = ENGINES[name]
    _reset_peak_rss()
    paths = {}
    while True:
        msg = conn.recv()
        if msg is None:
            conn.send(("rss", _peak_rss_mb()))
            return
        path, spec_set = msg
        data = paths.setdefault(path, Path(path).read_bytes())
        c0, w0 = time.process_time(), time.perf_counter()
        try:
            sizes = fn(data, SPEC_SETS[spec_set])
        except Exception as exc:  # report, so the parent does not wait forever
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        conn.send((sizes, (time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000))


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
    args = parser.parse_args(argv)

    names = [n for n in args.engines.split(",") if n]
    try:
        import pyvips  # noqa: F401
    except (ImportError, OSError) as exc:
        print(f"pyvips unavailable ({exc}); install requirements-bench.txt. Running without libvips.")
        names = [n for n in names if not n.startswith("vips")]

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
        p = ctx.Process(target=worker, args=(n, child), daemon=True, name=n)
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
    rss = {n: ask(pipes[n], procs[n], None)[1] for n in names}
    for p in procs.values():
        p.join(5)

    print(f"\ncorpus: {args.corpus or 'generated'} ({len(photos)} photos) x {args.rounds} rounds, JPEG q85")
    print(f"machine: {os.cpu_count()} cores; Python {sys.version.split()[0]}; figures are CPU ms per photo")
    ok = True
    for spec_set in sets:
        ok &= report(spec_set, names, photos, rss, *results[spec_set])
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


def off_by_one(a, b) -> bool:
    """Same renditions, each within one pixel (libvips' thumbnail rounds from its shrunk image)."""
    return len(a) == len(b) and all(
        x[0] == y[0] and abs(x[1] - y[1]) <= 1 and abs(x[2] - y[2]) <= 1 for x, y in zip(a, b, strict=True)
    )


def report(spec_set, names, photos, rss, cpu, wall, per_photo, mismatches) -> bool:
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
        print("imageshare / other (mean; median):")
        for n in names:
            if n != "imageshare":
                print(
                    f"  vs {n:<18} {ours / statistics.mean(cpu[n]):.2f}x; {ours_med / statistics.median(cpu[n]):.2f}x"
                    f"  (imageshare {statistics.mean(cpu[n]) / ours:.1f}x faster on the mean)"
                )
        print("per photo, median CPU ms:")
        print(f"  {'photo':<40}" + "".join(f"{n[:16]:>17}" for n in names))
        for photo in photos:
            row = "".join(f"{statistics.median(per_photo[n][photo.name]):>17.1f}" for n in names)
            print(f"  {photo.name:<40}{row}")
    unique = {(m[0], m[1]): m for m in mismatches}.values()
    if not unique:
        print("output sizes identical across engines: yes")
    else:
        print(f"output sizes identical across engines: no, {len(unique)} photo/engine pairs differ:")
        for photo, n, got, ref, near_ in unique:
            print(f"  {photo} {n}: {got} vs imageshare {ref}{' (within 1 px)' if near_ else ''}")
    return all(m[4] for m in mismatches)


if __name__ == "__main__":
    sys.exit(main())
