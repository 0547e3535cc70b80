"""The label map at the paper's scale: 17,000 labels × k = 1,024, from embedding to an interactive map.

Every measurement runs in a fresh Python process (nothing imported, nothing compiled in
memory), ``--repeats`` times, and the median is reported with the machine's load average
(``os.getloadavg``) before each run:

* ``cold``: the explorer (:class:`workbench.apps.explorer.LabelExplorer`) built from the
  embedding folder with an empty layout cache: imports, loading, the layout
  (:func:`workbench.apps.labelmap.label_coordinates`: UMAP on the exact cosine neighbours in
  the full space, both cores), the widget and its display data (the static picture
  included). Target ≤ 30 s, from process start to a displayable explorer.
* ``cached``: the same with the layout in the cache (reopening the notebook). Target ≤ 3 s.
* ``first``: ``cold`` with numba's on-disk cache empty too (``NUMBA_CACHE_DIR`` a new folder):
  the first map after installing, when umap-learn's functions are compiled.
* ``deterministic``: ``cold`` with ``deterministic=True`` (seeded UMAP on one core): what
  the same coordinates on every run cost.
* ``baseline``: the layout before this benchmark existed, measured in the same run: umap-learn
  seeded (one core) on the full 1,024-dimensional vectors with the cosine metric and its own
  approximate neighbour search (pynndescent).
* ``opentsne``, ``pacmap`` (``--alternatives``; only where those packages are installed,
  they are not dependencies): the other candidates, on the 64 leading principal components.
* ``browser``: Voilà serves a notebook showing the explorer (layout cached), Debian's
  Chromium (WebGL through SwiftShader) opens it: seconds from opening the page to the
  first frame with the map drawn (a screenshot of the canvas with points on it), and the
  kernel's share of them.

Each line also gives the process's CPU seconds (user + system, both cores together): what the
run cost the machine, less sensitive than wall time to other work sharing it. The quality of
each layout is its trustworthiness (scikit-learn, 10 neighbours) on 2,000
labels drawn at random, against the cosine geometry of the full vectors.

The embedding is the ``topics`` family of ``benchmarks/label_families.py`` (17,000 labels,
1,000,000 images, 50-label topics) embedded at k = 1,024 with the workbench's solver
(minutes); it is kept in ``--cache`` (``results/bench-cache/``) for later runs.

    .venv/bin/python benchmarks/bench_labelmap.py                       # every measurement, 3 repeats
    .venv/bin/python benchmarks/bench_labelmap.py --modes cold,cached --repeats 5
    .venv/bin/python benchmarks/bench_labelmap.py --modes browser --out results/bench-labelmap.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))
sys.path.insert(0, str(REPOSITORY / "benchmarks"))

TARGET_COLD, TARGET_CACHED = 30.0, 3.0
MODES = ("cold", "cached", "first", "deterministic", "baseline", "browser")
ALTERNATIVES = ("opentsne", "pacmap")


# ---------------------------------------------------------------------------------
# the embedding
# ---------------------------------------------------------------------------------
def cached_embedding(cache: Path, *, num_labels: int, dim: int, images: int, seed: int) -> Path:
    """The folder of the ``topics`` embedding (built and saved on first use; minutes at full size)."""
    folder = cache / f"labelmap-topics-{num_labels}-k{dim}-n{images}-s{seed}"
    if (folder / "embedding.json").is_file():
        return folder
    import numpy as np

    from label_families import FAMILIES, synthetic_label_matrix
    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    family = FAMILIES["topics"]
    print(f"building the {num_labels:,}-label embedding at k = {dim} (kept in {folder}) …", flush=True)
    began = time.perf_counter()
    matrix = synthetic_label_matrix(num_images=images, num_labels=num_labels, family=family, random_state=seed)
    rng = np.random.default_rng(seed)  # the topic of each label, as label_families draws it
    rng.permutation(num_labels)
    topic = rng.integers(0, max(1, num_labels // family.labels_per_topic), size=num_labels)
    vocabulary = Vocabulary(tuple(f"label-{i:05d}" for i in range(num_labels)), groups=tuple(f"topic {t:03d}" for t in topic))
    embedding = embed_labels(count_cooccurrence(matrix, vocabulary), embedding_dim=dim)
    embedding.save(folder)
    print(f"built in {time.perf_counter() - began:.0f} s", flush=True)
    return folder


# ---------------------------------------------------------------------------------
# one measurement, in a fresh process
# ---------------------------------------------------------------------------------
def worker(mode: str, embedding_dir: str, cache: str, coordinates_out: str) -> dict:
    """Runs in a fresh process: ``mode``'s work, timed; returns the figures (seconds since epoch where noted)."""
    started = time.perf_counter()
    import numpy as np

    from workbench.method.embedding import LabelEmbedding

    embedding = LabelEmbedding.load(embedding_dir)
    loaded = time.perf_counter()
    figures = {"load_seconds": loaded - started}
    if mode in ("cold", "cached", "first", "deterministic"):
        from workbench.apps.explorer import LabelExplorer

        explorer = LabelExplorer(embedding=embedding, cache=cache, deterministic=mode == "deterministic")
        built = time.perf_counter()
        explorer._repr_mimebundle_()  # what displaying it in a notebook computes (the static picture too)
        coordinates = explorer.coordinates
        figures.update(explorer_seconds=built - loaded, display_seconds=time.perf_counter() - built)
    else:
        from workbench.apps.labelmap import _principal_components

        vectors = np.asarray(embedding.vectors, dtype=np.float32)
        unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        if mode == "baseline":
            import warnings

            import umap  # as before: TensorFlow comes with it

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                coordinates = umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, metric="cosine", random_state=0,
                                        init="spectral").fit_transform(unit)
        elif mode == "opentsne":
            import openTSNE

            points = _principal_components(unit, 64).astype(np.float32)
            coordinates = np.asarray(openTSNE.TSNE(n_jobs=-1, random_state=0).fit(points))
        elif mode == "pacmap":
            import pacmap

            points = _principal_components(unit, 64).astype(np.float32)
            coordinates = pacmap.PaCMAP(n_components=2, random_state=0).fit_transform(points)
        else:
            raise ValueError(f"unknown mode {mode!r}")
    figures["layout_seconds"] = time.perf_counter() - loaded
    figures["ready_at"] = time.time()
    np.save(coordinates_out, np.asarray(coordinates, dtype=np.float32))
    return figures


def fresh_process(mode: str, embedding_dir: Path, *, cache: Path, scratch: Path) -> dict:
    """``mode`` in a new interpreter: seconds from starting it to the work done, and the worker's own figures."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    if mode == "first":
        environment["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-", dir=scratch)
    output, coordinates = scratch / f"{mode}.json", scratch / f"{mode}.npy"
    load = os.getloadavg()[0]
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.time()
    subprocess.run([sys.executable, __file__, "--worker", mode, "--embedding", str(embedding_dir), "--layout-cache",
                    str(cache), "--worker-out", str(output), "--worker-coordinates", str(coordinates)],
                   env=environment, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    figures = json.loads(output.read_text())
    figures.update(seconds=figures["ready_at"] - began, load=load, coordinates=str(coordinates),
                   cpu_seconds=(after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime))
    return figures


def trustworthiness_of(embedding_dir: Path, coordinates, *, sample: int = 2000, seed: int = 0) -> float:
    import numpy as np
    from sklearn.manifold import trustworthiness

    from workbench.method.embedding import LabelEmbedding

    vectors = LabelEmbedding.load(embedding_dir).vectors.astype(np.float64)
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    rows = np.random.default_rng(seed).choice(len(unit), size=min(sample, len(unit)), replace=False)
    return float(trustworthiness(unit[rows], np.asarray(coordinates)[rows], n_neighbors=10))


# ---------------------------------------------------------------------------------
# the browser
# ---------------------------------------------------------------------------------
def browser_first_frames(embedding_dir: Path, *, cache: Path, scratch: Path, repeats: int) -> list[dict]:
    """Open the explorer in Voilà + Chromium ``repeats`` times: seconds to the first drawn frame of the map."""
    from playwright.sync_api import sync_playwright

    from tests.test_browser import CHROMIUM, EXPLORER_SOURCE, WEBGL_ARGS, drawn_share, serve_notebook

    runs = []
    environment = {"WORKBENCH_EMBEDDING": str(embedding_dir), "WORKBENCH_SELECTION_CSV": str(scratch / "selection.csv"),
                   "WORKBENCH_MAP_METHOD": "umap", "WORKBENCH_MAP_CACHE": str(cache)}
    with serve_notebook(scratch / "voila", "explorer.ipynb", EXPLORER_SOURCE, environment=environment) as (url, log), \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=WEBGL_ARGS)
        try:
            for _ in range(repeats):
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                load = os.getloadavg()[0]
                began = time.monotonic()
                page.goto(url, timeout=120_000)
                canvas = page.locator(".workbench-label-explorer canvas").first
                canvas.wait_for(timeout=120_000)
                appeared = time.monotonic() - began
                while drawn_share(canvas.screenshot()) < 0.001:  # a blank canvas is 0; 17,000 small points cover ~1 %
                    if time.monotonic() - began > 120:
                        raise RuntimeError(f"the map stayed blank; Voilà log:\n{log.read_text()[-2000:]}")
                    page.wait_for_timeout(50)
                drawn = time.monotonic() - began
                kernel = page.locator("text=explorer ready in").first.inner_text()
                runs.append({"first_frame_seconds": drawn, "canvas_seconds": appeared, "load": load,
                             "kernel_seconds": float(kernel.split("in")[1].split("s")[0])})
                page.close()
        finally:
            browser.close()
    return runs


# ---------------------------------------------------------------------------------
# the report
# ---------------------------------------------------------------------------------
def median(values) -> float:
    return float(statistics.median(values))


def summary(report: dict) -> str:
    lines = [f"Label map of {report['labels']:,} labels × k = {report['dim']} on {os.cpu_count()} cores "
             f"(medians of {report['repeats']}; load average before each run in brackets)", ""]
    lines.append(f"{'measurement':<15} {'seconds':>8} {'layout':>8} {'cpu':>7} {'range':>15} {'load':>12} {'trust':>7}  note")
    notes = {"cold": f"fresh process → explorer displayable (target ≤ {TARGET_COLD:.0f} s)",
             "cached": f"reopened: layout read from the cache (target ≤ {TARGET_CACHED:.0f} s)",
             "first": "cold, numba's cache empty as well (first map after installing)",
             "deterministic": "cold, seeded UMAP on one core (the same map every run)",
             "baseline": "before: seeded umap-learn, cosine on all 1,024 dims, pynndescent",
             "opentsne": "openTSNE on the 64 components (both cores)", "pacmap": "PaCMAP on the 64 components"}
    for mode, runs in report["modes"].items():
        if mode == "browser" or not runs:
            continue
        seconds = [run["seconds"] for run in runs]
        layout = [run["layout_seconds"] for run in runs]
        loads = ", ".join(f"{run['load']:.1f}" for run in runs)
        trust = runs[0].get("trustworthiness")
        cpu = median([run["cpu_seconds"] for run in runs])
        lines.append(f"{mode:<15} {median(seconds):8.1f} {median(layout):8.1f} {cpu:7.1f} {min(seconds):6.1f}–{max(seconds):<7.1f} "
                     f"[{loads}]".ljust(65) + f" {trust if trust is None else format(trust, '.3f'):>7}  {notes[mode]}")
    browser = report["modes"].get("browser")
    if browser:
        frames = [run["first_frame_seconds"] for run in browser]
        kernel = [run["kernel_seconds"] for run in browser]
        loads = ", ".join(f"{run['load']:.1f}" for run in browser)
        lines += ["", f"browser: first drawn frame {median(frames):.1f} s after opening the Voilà page (range "
                      f"{min(frames):.1f}–{max(frames):.1f}; load [{loads}]), of which the kernel built the explorer in "
                      f"{median(kernel):.2f} s (layout cached); the rest is Voilà's kernel start, the widget's transfer and WebGL."]
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES + ALTERNATIVES)}")
    parser.add_argument("--alternatives", action="store_true", help="also openTSNE and PaCMAP, where installed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--labels", type=int, default=17_000)
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=REPOSITORY / "results" / "bench-cache")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--embedding", help=argparse.SUPPRESS)
    parser.add_argument("--layout-cache", help=argparse.SUPPRESS)
    parser.add_argument("--worker-out", help=argparse.SUPPRESS)
    parser.add_argument("--worker-coordinates", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        figures = worker(args.worker, args.embedding, args.layout_cache, args.worker_coordinates)
        Path(args.worker_out).write_text(json.dumps(figures))
        return 0
    modes = [mode.strip() for mode in args.modes.split(",") if mode.strip()]
    if args.alternatives:
        modes += [mode for mode in ALTERNATIVES if mode not in modes]
    embedding_dir = cached_embedding(args.cache, num_labels=args.labels, dim=args.dim, images=args.images, seed=args.seed)
    report = {"labels": args.labels, "dim": args.dim, "repeats": args.repeats, "cpu_count": os.cpu_count(), "modes": {}}
    scratch = Path(tempfile.mkdtemp(prefix="bench-labelmap-"))
    try:
        for mode in modes:
            if mode in ALTERNATIVES:
                import importlib.util

                if importlib.util.find_spec({"opentsne": "openTSNE", "pacmap": "pacmap"}[mode]) is None:
                    print(f"{mode}: not installed, skipped", flush=True)
                    continue
            if mode == "browser":
                cache = scratch / "layouts"
                fresh_process("cold", embedding_dir, cache=cache, scratch=scratch)  # fill the layout cache
                report["modes"]["browser"] = browser_first_frames(embedding_dir, cache=cache, scratch=scratch,
                                                                  repeats=args.repeats)
                print(f"browser: {report['modes']['browser']}", flush=True)
                continue
            runs = []
            if mode == "cached":  # the first opening fills the cache
                fresh_process("cold", embedding_dir, cache=scratch / "layouts-cached", scratch=scratch)
            for repeat in range(args.repeats):
                cache = scratch / ("layouts-cached" if mode == "cached" else f"layouts-{mode}-{repeat}")
                runs.append(fresh_process(mode, embedding_dir, cache=cache, scratch=scratch))
                print(f"{mode} #{repeat + 1}: {runs[-1]['seconds']:.1f} s (layout {runs[-1]['layout_seconds']:.1f} s, "
                      f"load {runs[-1]['load']:.1f})", flush=True)
            import numpy as np

            runs[0]["trustworthiness"] = trustworthiness_of(embedding_dir, np.load(runs[0]["coordinates"]))
            report["modes"][mode] = runs
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print(summary(report))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
