"""Counting, PMI and spectral label embedding at JFT scale: speed, memory and accuracy.

Synthetic label statistics shaped like JFT's: ``--labels`` labels (17,000) with Zipf
frequencies, ``--images`` images (1,000,000) with about ``--labels-per-image`` (8)
distinct labels each, drawn mostly from one or two topics of ``--labels-per-topic``
labels (so the PMI has structure), the rest from the global Zipf distribution.

Figures, all measured in this run:

* counting time (target ≤ 10 s) and its ratio to a plain-Python pair-count loop on
  ``--baseline-images`` images, scaled linearly to ``N``;
* PMI time; embedding time for each ``--dims`` (solver ``auto``, ``--tolerance``) and
  for the first dim again with the Krylov basis capped at ``--fast-basis-factor``·k
  (the fast path: what it saves in time and loses in accuracy); end to end
  count + PMI + embed (target ≤ 60 s at k = 1,024); peak resident memory of the
  process after each step (``ru_maxrss``; target ≤ 6 GB);
* accuracy against an exact reference: every one of the ``k`` eigenvalues within 1%,
  and the overlap of top-10 nearest-label lists (``--neighbour-sample`` labels). When
  solver ``auto`` chose the exact dense solver for one of ``--dims`` (it does for
  k = 4,096 at 17,000 labels), that solve is the full-size reference for every
  eigenvalue of the smaller ``k``;
  ``--reference dense`` uses ``scipy.linalg.eigh`` (LAPACK ``evr``) at full size, which
  on 2 cores can take many minutes at 17,000 labels; ``--reference auto`` (default)
  does that only up to ``--dense-max-labels`` labels, and otherwise checks the top
  ``--eigsh-top`` eigenvalues against ``scipy.sparse.linalg.eigsh`` (tight tolerance)
  at full size plus every eigenvalue and the neighbour lists on a proportionally
  scaled problem of ``--accuracy-labels`` labels;
* Dask: the same counting on ``--dask-shards`` ``.npz`` shards with a 2-worker
  ``LocalCluster`` beside the single-process time (identical counts checked).

    .venv/bin/python benchmarks/bench_embedding.py                       # full scale
    .venv/bin/python benchmarks/bench_embedding.py --labels 2000 --images 100000 --dims 64,256
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402


def _draw_label_matrix(*, num_images, num_labels, draws_per_image, labels_per_topic, zipf_exponent, topic_share, random_state):
    rng = np.random.default_rng(random_state)
    num_topics = max(1, num_labels // labels_per_topic)
    weights = 1.0 / np.arange(1, num_labels + 1) ** zipf_exponent
    weights = weights[rng.permutation(num_labels)]
    topic = rng.integers(0, num_topics, size=num_labels)
    order = np.argsort(topic, kind="stable")
    cumulative = np.cumsum(weights[order])
    bounds = np.searchsorted(topic[order], np.arange(num_topics + 1))
    padded = np.concatenate([[0.0], cumulative])
    start, stop = padded[bounds[:-1]], padded[bounds[1:]]
    draws = rng.poisson(draws_per_image, size=num_images).clip(1, None)
    total = int(draws.sum())
    image = np.repeat(np.arange(num_images), draws)
    image_topics = rng.choice(num_topics, size=(num_images, 2), p=(stop - start) / cumulative[-1])
    second = rng.integers(0, 2, size=total) * (rng.random(total) < 0.3)  # mostly the image's first topic
    chosen_topic = image_topics[image, second]
    uniform = rng.random(total)
    target = np.where(
        rng.random(total) < topic_share,
        start[chosen_topic] + uniform * (stop[chosen_topic] - start[chosen_topic]),
        uniform * cumulative[-1],
    )
    label = order[np.minimum(np.searchsorted(cumulative, target, side="right"), num_labels - 1)]
    matrix = sp.csr_matrix((np.ones(total, dtype=np.uint8), (image, label)), shape=(num_images, num_labels))
    matrix.sum_duplicates()
    matrix.data[:] = 1
    return matrix


def synthetic_label_matrix(*, num_images, num_labels, labels_per_image=8.0, labels_per_topic=50, zipf_exponent=1.0,
                           topic_share=0.8, random_state=0) -> sp.csr_matrix:
    """Binary CSR ``(num_images, num_labels)`` uint8 with about ``labels_per_image`` distinct labels a row."""
    options = dict(num_labels=num_labels, labels_per_topic=labels_per_topic, zipf_exponent=zipf_exponent, topic_share=topic_share)
    draws = labels_per_image
    for _ in range(4):  # duplicates inside an image are dropped: calibrate the draws on a sample
        sample = _draw_label_matrix(num_images=20_000, draws_per_image=draws, random_state=random_state + 1, **options)
        draws *= labels_per_image / (sample.nnz / sample.shape[0])
    return _draw_label_matrix(num_images=num_images, draws_per_image=draws, random_state=random_state, **options)


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


def timed(function, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


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
    return {"labels_sampled": int(len(labels)), "top": top, "mean_overlap": float(np.mean(overlaps)),
            "min_overlap": float(np.min(overlaps)), "same_nearest": float(np.mean(same_first))}


def eigen_accuracy(fast_values, exact_values) -> dict:
    exact_values = np.asarray(exact_values)[: len(fast_values)]
    relative = np.abs(np.asarray(fast_values)[: len(exact_values)] - exact_values) / np.abs(exact_values)
    return {"compared": int(len(relative)), "max_relative_error": float(relative.max()),
            "worst_index": int(relative.argmax()), "beyond_1_percent": int(np.count_nonzero(relative > 0.01)),
            "exact_tail_eigenvalue": float(exact_values[-1])}


def dense_reference(matrix, dim: int):
    """Top-``dim`` eigenpairs by dense LAPACK ``evr`` (float64), largest first."""
    import scipy.linalg

    size = matrix.shape[0]
    values, vectors = scipy.linalg.eigh(matrix.toarray(), subset_by_index=[size - dim, size - 1], overwrite_a=True,
                                        check_finite=False, driver="evr")
    return values[::-1], vectors[:, ::-1]


def compare_with_dense(pmi_matrix_, fast_results, *, neighbour_sample) -> dict:
    """Every eigenvalue and the neighbour lists of each fast result against one dense float64 solve."""
    out = {}
    (values, vectors), seconds, cpu = timed(dense_reference, pmi_matrix_, max(r.info["dim_requested"] for r in fast_results.values()))
    out["dense_seconds"], out["dense_cpu_seconds"] = round(seconds, 2), round(cpu, 2)
    for name, fast in fast_results.items():
        keep = min(fast.info["dim_requested"], int(np.count_nonzero(values > 0)))
        exact_vectors = vectors[:, :keep] * np.sqrt(values[:keep])
        out[name] = {
            "eigenvalues": eigen_accuracy(fast.eigenvalues, values[:keep]),
            "neighbours": neighbour_overlap(fast.vectors, exact_vectors, sample=neighbour_sample),
            "fast_seconds": fast.info["seconds"],
            "speed_ratio_dense_over_fast": round(seconds / max(fast.info["seconds"], 1e-9), 2),
        }
    return out


def run_pipeline(matrix, args, dims, *, label: str) -> tuple:
    """Count, PMI and embed (solver auto; plus the capped-basis fast path) with timings and memory."""
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.data.labels import Vocabulary
    from workbench.method.pmi import pmi_matrix
    from workbench.method.embed import energy_kept, spectral_embedding

    vocabulary = Vocabulary(tuple(f"label{i:05d}" for i in range(matrix.shape[1])))
    counts, count_seconds, count_cpu = timed(count_cooccurrence, matrix, vocabulary)
    pmi, pmi_seconds, pmi_cpu = timed(pmi_matrix, counts)
    figures = {"problem": label, "num_labels": matrix.shape[1], "num_images": matrix.shape[0],
               "labels_per_image": round(matrix.nnz / matrix.shape[0], 3), "pairs": counts.summary()["num_pairs"],
               "pmi_density": round(pmi.matrix.nnz / matrix.shape[1] ** 2, 4),
               "count_seconds": round(count_seconds, 2), "count_cpu_seconds": round(count_cpu, 2),
               "pmi_seconds": round(pmi_seconds, 2), "peak_rss_gb_after_pmi": round(peak_rss_gb(), 2)}
    runs = [(str(dim), dim, {"solver": args.solver}) for dim in dims]
    if args.fast_basis_factor:
        runs.insert(1, (f"{dims[0]}-basis{args.fast_basis_factor:g}k", dims[0],
                        {"solver": "randomized", "max_basis": int(args.fast_basis_factor * dims[0])}))
    results = {}
    for name, dim, options in runs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result, seconds, cpu = timed(spectral_embedding, pmi, embedding_dim=dim, tolerance=args.tolerance,
                                         random_state=args.seed, **options)
        results[name] = result
        info = {key: value for key, value in result.info.items() if key != "checks"}
        figures[f"embed_{name}"] = {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
                                    "end_to_end_seconds": round(count_seconds + pmi_seconds + seconds, 2),
                                    "energy_kept": round(energy_kept(result.eigenvalues, pmi), 4),
                                    "peak_rss_gb_so_far": round(peak_rss_gb(), 2), **info}
        print(f"[{label}] k={name}: {seconds:.1f} s (cpu {cpu:.1f} s), end to end {count_seconds + pmi_seconds + seconds:.1f} s, "
              f"solver {info['solver']}, basis {info.get('basis_size', '-')}, peak RSS {peak_rss_gb():.2f} GB", flush=True)
    return figures, counts, pmi, results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=17_000)
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--labels-per-image", type=float, default=8.0)
    parser.add_argument("--labels-per-topic", type=int, default=50)
    parser.add_argument("--dims", default="1024,4096", help="comma-separated embedding dimensions")
    parser.add_argument("--solver", default="auto", choices=["auto", "exact", "randomized"])
    parser.add_argument("--tolerance", type=float, default=1e-2, help="randomized solver's target relative eigenvalue error")
    parser.add_argument("--fast-basis-factor", type=float, default=3.0,
                        help="also run the first dim with the Krylov basis capped at FACTOR*k (the fast path; 0: skip)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline-images", type=int, default=20_000)
    parser.add_argument("--reference", default="auto", choices=["auto", "dense", "none"])
    parser.add_argument("--dense-max-labels", type=int, default=6_000)
    parser.add_argument("--accuracy-labels", type=int, default=6_000)
    parser.add_argument("--eigsh-top", type=int, default=64)
    parser.add_argument("--neighbour-sample", type=int, default=500)
    parser.add_argument("--dask-shards", type=int, default=8)
    parser.add_argument("--skip-dask", action="store_true")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    dims = [int(d) for d in args.dims.split(",") if d]
    report: dict = {"arguments": {k: str(v) for k, v in vars(args).items()}}

    matrix, seconds, _ = timed(synthetic_label_matrix, num_images=args.images, num_labels=args.labels,
                               labels_per_image=args.labels_per_image, labels_per_topic=args.labels_per_topic,
                               random_state=args.seed)
    print(f"generated {matrix.shape[0]:,} images x {matrix.shape[1]:,} labels, {matrix.nnz / matrix.shape[0]:.2f} labels/image "
          f"in {seconds:.1f} s", flush=True)

    figures, counts, pmi, fast_results = run_pipeline(matrix, args, dims, label="full")
    report["full"] = figures

    # plain-Python baseline on a subsample, scaled to N
    subsample = matrix[: min(args.baseline_images, matrix.shape[0])]
    (label_counts, pairs), python_seconds, _ = timed(python_pair_counts, subsample)
    from workbench.method.cooccurrence import count_cooccurrence

    small = count_cooccurrence(subsample, counts.vocabulary)
    upper = sp.triu(small.pair_counts).tocoo()
    assert dict(zip(zip(upper.row.tolist(), upper.col.tolist()), upper.data.tolist())) == pairs, "baseline disagrees"
    scaled = python_seconds * matrix.shape[0] / subsample.shape[0]
    report["baseline"] = {"python_images": subsample.shape[0], "python_seconds": round(python_seconds, 2),
                          "python_seconds_scaled_to_N": round(scaled, 1),
                          "speedup_vs_python": round(scaled / figures["count_seconds"], 1)}
    print(f"counting {figures['count_seconds']} s vs plain Python {scaled:.0f} s (scaled from {subsample.shape[0]:,} images): "
          f"{report['baseline']['speedup_vs_python']}x", flush=True)

    # accuracy at full size against an exact solve this run already made (solver auto picks the
    # dense LAPACK solver for large k): every eigenvalue and the neighbour lists of the others
    exact_runs = {name: r for name, r in fast_results.items() if r.info.get("solver") == "exact"}
    if exact_runs:
        reference_name, reference = max(exact_runs.items(), key=lambda item: len(item[1].eigenvalues))
        report["accuracy_full_exact"] = {"reference": reference_name}
        for name, result in fast_results.items():
            if name == reference_name or len(result.eigenvalues) > len(reference.eigenvalues):
                continue
            keep = len(result.eigenvalues)
            report["accuracy_full_exact"][name] = {
                "eigenvalues": eigen_accuracy(result.eigenvalues, reference.eigenvalues[:keep]),
                "neighbours": neighbour_overlap(result.vectors, reference.vectors[:, :keep], sample=args.neighbour_sample),
            }
        print("accuracy (full size, every eigenvalue vs the exact solve of k="
              f"{reference_name}):", json.dumps(report["accuracy_full_exact"]), flush=True)

    # accuracy
    if args.reference == "dense" or (args.reference == "auto" and args.labels <= args.dense_max_labels):
        report["accuracy_full"] = compare_with_dense(pmi.matrix, fast_results, neighbour_sample=args.neighbour_sample)
        print("accuracy (full size, dense reference):", json.dumps(report["accuracy_full"]), flush=True)
    elif args.reference == "auto":
        import scipy.sparse.linalg

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            top, seconds, _ = timed(scipy.sparse.linalg.eigsh, pmi.matrix, k=args.eigsh_top, which="LA", tol=1e-10,
                                    return_eigenvectors=False)
        top = np.sort(top)[::-1]
        report["accuracy_full_eigsh_top"] = {"eigsh_seconds": round(seconds, 1),
                                             **{name: eigen_accuracy(r.eigenvalues[: len(top)], top) for name, r in fast_results.items()}}
        print("accuracy (full size, top eigenvalues vs eigsh):", json.dumps(report["accuracy_full_eigsh_top"]), flush=True)
        ratio = args.accuracy_labels / args.labels
        scaled_dims = [max(1, round(d * ratio)) for d in dims]
        small_matrix = synthetic_label_matrix(num_images=max(1000, round(args.images * ratio)), num_labels=args.accuracy_labels,
                                              labels_per_image=args.labels_per_image, labels_per_topic=args.labels_per_topic,
                                              random_state=args.seed)
        small_figures, _, small_pmi, small_results = run_pipeline(small_matrix, args, scaled_dims, label="scaled")
        small_figures["accuracy"] = compare_with_dense(small_pmi.matrix, small_results, neighbour_sample=args.neighbour_sample)
        report["accuracy_scaled"] = small_figures
        print("accuracy (scaled problem, dense reference):", json.dumps(small_figures["accuracy"]), flush=True)

    if not args.skip_dask:
        report["dask"] = bench_dask(matrix, counts, shards=args.dask_shards)
        print("dask:", json.dumps(report["dask"]), flush=True)

    report["peak_rss_gb_end"] = round(peak_rss_gb(), 2)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
