"""Counting, PMI and spectral label embedding at JFT scale, on several families of label statistics.

For every family of ``benchmarks/label_families.py`` (``--families``; three synthetic
families that differ in topics, topics per image, topic share, labels per image and
popularity skew, plus the real COCO and VOC counts copied up to about ``--labels``
labels with cross-noise), in a process of its own (so its peak memory is its own):

* time of each step: counting (synthetic families: ``--images`` images; the real
  families start from counts), PMI, and the embedding for each ``--dims`` with solver
  ``auto`` (``--tolerance``), end to end (target ≤ 60 s at k = 1,024);
* peak resident memory of each step (sampled every 10 ms) and of the whole family
  (``ru_maxrss``; target ≤ 6 GB);
* accuracy against an exact reference: **every** eigenvalue (target: all within 1 %),
  the largest eigenpair residual ``‖P v − λ v‖ / λ`` (computed here for every solver,
  not taken from the solver), and the overlap of top-10 nearest-label lists. The
  reference is a dense LAPACK solve (``evr``, float32 above 8,000 labels, float64
  below) of the top ``max(dims)`` eigenpairs; at 17,000 labels it takes minutes, so
  it is kept in ``--cache`` (keyed by the PMI matrix's checksum) for later runs;
* the same figures for ``scipy.sparse.linalg.eigsh`` (ARPACK, ``tol`` = ``--tolerance``)
  measured in the same process (``--skip-eigsh`` leaves it out).

For the ``topics`` family it also measures counting against a plain-Python pair loop
(``--baseline-images`` images, scaled to ``N``) and counting on a 2-worker Dask
``LocalCluster`` over ``--dask-shards`` shards (identical counts checked).

    .venv/bin/python benchmarks/bench_embedding.py --out results/bench-embedding.json   # full scale, ~1 h the first time
    .venv/bin/python benchmarks/bench_embedding.py --labels 2000 --images 100000 --dims 64,256 --families topics,coco
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from label_families import FAMILIES, build_family  # noqa: E402

TARGET_SECONDS, TARGET_GB, TARGET_RELATIVE_ERROR = 60.0, 6.0, 0.01


def python_pair_counts(matrix: sp.csr_matrix) -> tuple[list, dict]:
    """The plain-Python baseline: loops over images and their label pairs."""
    label_counts = [0] * matrix.shape[1]
    pairs: dict = {}
    indptr, indices = matrix.indptr.tolist(), matrix.indices.tolist()
    for row in range(matrix.shape[0]):
        labels = indices[indptr[row] : indptr[row + 1]]
        for position, i in enumerate(labels):
            label_counts[i] += 1
            for j in labels[position + 1 :]:
                key = (i, j) if i < j else (j, i)
                pairs[key] = pairs.get(key, 0) + 1
    return label_counts, pairs


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # Linux: kB


class PeakMemory:
    """Peak resident memory (GB) while the ``with`` block runs, sampled from ``/proc/self/statm``."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.gb = interval, 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _resident(self) -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * self._page / 1024**3

    def _sample(self):
        while not self._stop.is_set():
            self.gb = max(self.gb, self._resident())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.gb = self._resident()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.gb = max(self.gb, self._resident())


def timed(function, *args, **kwargs):
    """``(result, wall seconds, peak GB during the call)``."""
    with PeakMemory() as peak:
        wall = time.perf_counter()
        result = function(*args, **kwargs)
        wall = time.perf_counter() - wall
    return result, wall, peak.gb


def neighbour_overlap(fast: np.ndarray, exact: np.ndarray, *, sample: int, top: int = 10, random_state: int = 0) -> dict:
    """Mean share of each sampled label's top-``top`` cosine neighbours that both embeddings agree on."""
    from workbench.method.embedding import cosine_similarities

    rng = np.random.default_rng(random_state)
    labels = rng.choice(fast.shape[0], size=min(sample, fast.shape[0]), replace=False)
    overlaps, same_first = [], []
    for block in np.array_split(labels, max(1, len(labels) // 100)):
        lists = []
        for vectors in (fast, exact):
            similarity = cosine_similarities(vectors[block], vectors)
            similarity[np.arange(len(block)), block] = -np.inf
            lists.append(np.argsort(-similarity, axis=1, kind="stable")[:, :top])
        for a, b in zip(*lists):
            overlaps.append(len(set(a) & set(b)) / top)
            same_first.append(a[0] == b[0])
    return {"mean_overlap": round(float(np.mean(overlaps)), 4), "same_nearest": round(float(np.mean(same_first)), 4)}


def eigen_accuracy(values, exact_values) -> dict:
    """Every eigenvalue against the reference: the largest relative error and how many miss 1 %."""
    keep = min(len(values), len(exact_values))
    exact_values = np.asarray(exact_values)[:keep]
    relative = np.abs(np.asarray(values)[:keep] - exact_values) / np.abs(exact_values)
    return {"compared": int(keep), "max_relative_error": float(relative.max()),
            "worst_index": int(relative.argmax()), "beyond_1_percent": int(np.count_nonzero(relative > 0.01))}


def max_relative_residual(matrix, values, unit_vectors) -> float:
    """``max_i ‖P v_i − λ_i v_i‖ / |λ_i|`` in float64 (an eigenvalue of ``P`` lies within that of λ_i)."""
    worst = 0.0
    for start in range(0, len(values), 256):
        v = np.asarray(unit_vectors[:, start : start + 256], dtype=np.float64)
        v = v / np.linalg.norm(v, axis=0)
        residual = np.asarray(matrix @ v) - v * values[start : start + 256]
        worst = max(worst, float((np.linalg.norm(residual, axis=0) / np.abs(values[start : start + 256])).max()))
    return worst


def pmi_checksum(matrix) -> str:
    matrix = sp.csr_matrix(matrix)
    digest = hashlib.sha256()
    for part in (matrix.indptr, matrix.indices, matrix.data):
        digest.update(np.ascontiguousarray(part).tobytes())
    return digest.hexdigest()[:16]


def exact_reference(matrix, dim: int, *, cache: Path | None):
    """Top-``dim`` eigenpairs by dense LAPACK ``evr``, largest first; read from / written to ``cache``."""
    import scipy.linalg

    path = None
    if cache is not None:
        path = cache / f"reference-{matrix.shape[0]}-{dim}-{pmi_checksum(matrix)}.npz"
        if path.is_file():
            stored = np.load(path)
            return stored["values"], stored["vectors"], {"seconds": float(stored["seconds"]), "cached": True}
    size = matrix.shape[0]
    dtype = np.float64 if size <= 8_000 else np.float32
    began = time.perf_counter()
    values, vectors = scipy.linalg.eigh(matrix.astype(dtype).toarray(), subset_by_index=[size - dim, size - 1],
                                        overwrite_a=True, check_finite=False, driver="evr")
    seconds = time.perf_counter() - began
    values, vectors = values[::-1].astype(np.float64), np.ascontiguousarray(vectors[:, ::-1], dtype=np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, values=values, vectors=vectors, seconds=seconds)
        partial.replace(path)
    return values, vectors, {"seconds": round(seconds, 1), "cached": False, "precision": np.dtype(dtype).name}


def accuracy(matrix, values, unit_vectors, reference, *, neighbour_sample: int) -> dict:
    """Every eigenvalue, the largest residual and the neighbour lists against ``reference``."""
    exact_values, exact_vectors = reference
    keep = min(len(values), len(exact_values))
    positive = exact_values[:keep] > 0
    keep = int(np.count_nonzero(positive))
    scale = np.sqrt(np.abs(values[:keep]))
    return {
        "eigenvalues": eigen_accuracy(values[:keep], exact_values[:keep]),
        "max_relative_residual": max_relative_residual(matrix, values[:keep], unit_vectors[:, :keep]),
        "neighbours": neighbour_overlap(unit_vectors[:, :keep] * scale, exact_vectors[:, :keep] * np.sqrt(exact_values[:keep]),
                                        sample=neighbour_sample),
    }


def eigsh_pairs(matrix, dim: int, tolerance: float):
    """ARPACK's top-``dim`` eigenpairs (largest algebraic), largest first."""
    import scipy.sparse.linalg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        values, vectors = scipy.sparse.linalg.eigsh(matrix, k=dim, which="LA", tol=tolerance)
    order = np.argsort(-values)
    return values[order], vectors[:, order]


def run_family(name: str, args) -> dict:
    """One family: build, count, PMI, embed each dim, eigsh, exact reference, accuracy."""
    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import spectral_embedding
    from workbench.method.pmi import pmi_matrix

    dims = [int(d) for d in args.dims.split(",") if d]
    began = time.perf_counter()
    kind, data = build_family(name, num_labels=args.labels, num_images=args.images, random_state=args.seed)
    report = {"family": name, "description": FAMILIES[name].description, "build_seconds": round(time.perf_counter() - began, 1)}
    if kind == "matrix":
        vocabulary = Vocabulary(tuple(f"label{i:05d}" for i in range(data.shape[1])))
        counts, seconds, peak = timed(count_cooccurrence, data, vocabulary)
        report.update(count_seconds=round(seconds, 2), count_peak_gb=round(peak, 2), labels_per_image=round(data.nnz / data.shape[0], 2))
    else:
        counts = data
        report.update(count_seconds=None, count_peak_gb=None, labels_per_image=round(counts.summary()["mean_labels_per_image"], 2))
    summary = counts.summary()
    report.update(num_labels=summary["num_labels"], num_images=summary["n_images"], pairs=summary["num_pairs"])
    pmi, seconds, peak = timed(pmi_matrix, counts)
    matrix = pmi.matrix
    report.update(pmi_seconds=round(seconds, 2), pmi_peak_gb=round(peak, 2), pmi_density=round(matrix.nnz / matrix.shape[0] ** 2, 4))
    print(f"[{name}] {report['num_labels']:,} labels, {report['num_images']:,} images, {report['pairs']:,} pairs; "
          f"counting {report['count_seconds']} s, PMI {report['pmi_seconds']} s", flush=True)
    reference = None
    if args.reference:
        values, vectors, info = exact_reference(matrix, max(dims), cache=args.cache)
        reference = (values, vectors)
        report["reference"] = {**info, "top": float(values[0]), "tail": float(values[-1]),
                               "positive": int(np.count_nonzero(values > 0))}
        took = "cached" if info["cached"] else f"{info['seconds']} s"
        print(f"[{name}] exact reference ({took})", flush=True)
        if args.reference_only:
            return report
    for dim in dims:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result, seconds, peak = timed(spectral_embedding, pmi, embedding_dim=dim, tolerance=args.tolerance,
                                          random_state=args.seed, solver=args.solver, block_size=args.block_size)
        entry = {"seconds": round(seconds, 2), "peak_gb": round(peak, 2),
                 "end_to_end_seconds": round((report["count_seconds"] or 0) + report["pmi_seconds"] + seconds, 2),
                 **{key: value for key, value in result.info.items() if key in ("solver", "basis_size", "block_size",
                                                                              "estimated_max_relative_error", "seconds_products",
                                                                              "seconds_orthogonalisation", "seconds_rayleigh_ritz",
                                                                              "switched_from_randomized")}}
        unit = result.vectors / np.sqrt(np.abs(result.eigenvalues)).astype(np.float32)
        if reference is not None:
            entry.update(accuracy(matrix, result.eigenvalues, unit, reference, neighbour_sample=args.neighbour_sample))
        report[f"workbench_k{dim}"] = entry
        print(f"[{name}] k={dim} workbench ({entry['solver']}): {seconds:.1f} s, peak {peak:.2f} GB, "
              f"end to end {entry['end_to_end_seconds']} s" + (f", max error {entry['eigenvalues']['max_relative_error']:.2e}, "
                                                                 f"residual {entry['max_relative_residual']:.1e}" if reference else ""), flush=True)
        if not args.skip_eigsh:
            (values, vectors), seconds, peak = timed(eigsh_pairs, matrix, dim, args.tolerance)
            entry = {"seconds": round(seconds, 2), "peak_gb": round(peak, 2)}
            if reference is not None:
                entry.update(accuracy(matrix, values, vectors, reference, neighbour_sample=args.neighbour_sample))
            report[f"eigsh_k{dim}"] = entry
            print(f"[{name}] k={dim} eigsh: {seconds:.1f} s, peak {peak:.2f} GB" +
                  (f", max error {entry['eigenvalues']['max_relative_error']:.2e}" if reference else ""), flush=True)
    if name == "topics" and kind == "matrix" and not args.skip_baseline:
        report["counting_baseline"] = counting_baseline(data, counts, args)
    if name == "topics" and kind == "matrix" and not args.skip_dask:
        report["dask"] = bench_dask(data, counts, shards=args.dask_shards)
    report["peak_rss_gb"] = round(peak_rss_gb(), 2)
    return report


def counting_baseline(matrix, counts, args) -> dict:
    """The plain-Python pair loop on a subsample (checked against ours), scaled to ``N``."""
    from workbench.method.cooccurrence import count_cooccurrence

    subsample = matrix[: min(args.baseline_images, matrix.shape[0])]
    (_, pairs), python_seconds, _ = timed(python_pair_counts, subsample)
    upper = sp.triu(count_cooccurrence(subsample, counts.vocabulary).pair_counts).tocoo()
    if dict(zip(zip(upper.row.tolist(), upper.col.tolist()), upper.data.tolist())) != pairs:
        raise RuntimeError("the plain-Python baseline disagrees with count_cooccurrence")
    scaled = python_seconds * matrix.shape[0] / subsample.shape[0]
    return {"python_images": subsample.shape[0], "python_seconds": round(python_seconds, 2),
            "python_seconds_scaled_to_N": round(scaled, 1)}


def bench_dask(matrix, counts, *, shards: int) -> dict:
    """2-worker LocalCluster over ``.npz`` shards, beside the single-process count."""
    import distributed

    from workbench.method.cooccurrence import count_cooccurrence, count_cooccurrence_dask, write_label_shards

    with tempfile.TemporaryDirectory() as folder:
        paths = write_label_shards(matrix, counts.vocabulary, folder, shard_size=-(-matrix.shape[0] // shards))
        _, single_seconds, _ = timed(count_cooccurrence, matrix, counts.vocabulary)
        began = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                distributed.Client(cluster) as client:
            startup = time.perf_counter() - began
            result, dask_seconds, _ = timed(count_cooccurrence_dask, paths, client=client, vocabulary=counts.vocabulary)
    identical = (result.n_images == counts.n_images and np.array_equal(result.label_counts, counts.label_counts)
                 and (result.pair_counts != counts.pair_counts).nnz == 0)
    return {"shards": len(paths), "workers": 2, "cluster_start_seconds": round(startup, 1),
            "dask_count_seconds": round(dask_seconds, 2), "single_process_count_seconds": round(single_seconds, 2),
            "identical_counts": bool(identical)}


def summary_table(reports: list[dict], dims: list[int]) -> str:
    """A Markdown table: per family and dim, the workbench solver beside eigsh, and whether the targets are met."""
    rows = ["| family | labels | k | counting + PMI s | workbench: solver, s, end to end s, peak GB, max eigenvalue error, "
            "beyond 1 %, max residual, top-10 overlap | eigsh: s, peak GB, max error, beyond 1 % | targets met |",
            "|---|---|---|---|---|---|---|"]
    for report in reports:
        for dim in dims:
            ours, theirs = report.get(f"workbench_k{dim}"), report.get(f"eigsh_k{dim}")
            if ours is None:
                continue
            before = (report["count_seconds"] or 0) + report["pmi_seconds"]
            peak = max(report["peak_rss_gb"], ours["peak_gb"])
            cells = [f"{ours['solver']}, {ours['seconds']:.1f}, **{ours['end_to_end_seconds']:.1f}**, {ours['peak_gb']:.2f}"]
            met = [ours["end_to_end_seconds"] <= TARGET_SECONDS, peak <= TARGET_GB]
            if "eigenvalues" in ours:
                error = ours["eigenvalues"]
                cells.append(f"{error['max_relative_error']:.2%}, {error['beyond_1_percent']}, "
                             f"{ours['max_relative_residual']:.1e}, {ours['neighbours']['mean_overlap']:.1%}")
                met.append(error["beyond_1_percent"] == 0)
            other = "—"
            if theirs is not None:
                other = f"{theirs['seconds']:.1f}, {theirs['peak_gb']:.2f}"
                if "eigenvalues" in theirs:
                    other += f", {theirs['eigenvalues']['max_relative_error']:.2%}, {theirs['eigenvalues']['beyond_1_percent']}"
            verdict = "yes" if all(met) else "no (" + ", ".join(
                what for what, ok in zip(("time", "memory", "accuracy"), met) if not ok) + ")"
            rows.append(f"| {report['family']} | {report['num_labels']:,} | {dim} | {before:.1f} | {'; '.join(cells)} | {other} | {verdict} |")
    return "\n".join(rows)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES), help=f"comma-separated, of {', '.join(FAMILIES)}")
    parser.add_argument("--labels", type=int, default=17_000)
    parser.add_argument("--images", type=int, default=1_000_000, help="images of the synthetic families")
    parser.add_argument("--dims", default="1024", help="comma-separated embedding dimensions")
    parser.add_argument("--solver", default="auto", choices=["auto", "exact", "randomized", "jax"])
    parser.add_argument("--tolerance", type=float, default=1e-2, help="relative eigenvalue tolerance (ours and eigsh's tol)")
    parser.add_argument("--block-size", type=int, help="Krylov block width (default: the solver's, clip(k/16, 16, 64))")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", dest="reference", action="store_false", help="skip the exact reference (no accuracy)")
    parser.add_argument("--cache", type=Path, default=Path("results") / "bench-cache", help="exact references kept here")
    parser.add_argument("--neighbour-sample", type=int, default=500)
    parser.add_argument("--baseline-images", type=int, default=20_000)
    parser.add_argument("--dask-shards", type=int, default=8)
    parser.add_argument("--reference-only", action="store_true", help="only compute (and cache) the exact references")
    parser.add_argument("--skip-eigsh", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--family", help=argparse.SUPPRESS)  # internal: run one family in this process
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    unknown = [name for name in args.families.split(",") if name not in FAMILIES]
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {', '.join(FAMILIES)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.family:  # the child: one family, its report as JSON on the last line
        print("REPORT " + json.dumps(run_family(args.family, args)), flush=True)
        return 0
    argv = list(sys.argv[1:] if argv is None else argv)
    reports = []
    for name in args.families.split(","):
        child = subprocess.run([sys.executable, __file__, *argv, "--family", name], stdout=subprocess.PIPE, text=True)
        lines = child.stdout.splitlines()
        print("\n".join(line for line in lines if not line.startswith("REPORT ")), flush=True)
        if child.returncode != 0:
            print(f"[{name}] failed with exit status {child.returncode}", flush=True)
            continue
        reports.append(json.loads(next(line for line in reversed(lines) if line.startswith("REPORT "))[len("REPORT "):]))
    dims = [int(d) for d in args.dims.split(",") if d]
    print(json.dumps(reports, indent=2))
    print()
    print(summary_table(reports, dims))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"arguments": {k: str(v) for k, v in vars(args).items()}, "families": reports}, indent=2) + "\n")
    return 0 if len(reports) == len(args.families.split(",")) else 1


if __name__ == "__main__":
    sys.exit(main())
