"""The embedding's dense eigen-decomposition through JAX (a GPU when JAX sees one), checked by residuals.

A PMI matrix of ``--labels`` labels is built from generated label sets (topics of labels
that co-occur, a long tail of popularity), decomposed with
``eigenpairs(solver="jax")`` (float32 ``jax.numpy.linalg.eigh`` on JAX's default device),
and every one of the ``--dim`` most significant pairs is checked in float64 on the CPU:
the largest relative residual ``‖P v − λ v‖ / |λ|``. With ``--reference`` the eigenvalues
are also compared with the exact float64 LAPACK solver (minutes above a few thousand
labels on a CPU). Figures go to ``--out`` as JSON.

    python benchmarks/gpu_eigh.py --labels 17000 --dim 1024 --out gpu/eigh.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def topic_counts(num_labels: int, *, num_images: int, random_state: int = 0):
    """Co-occurrence counts of label sets drawn from topics (each image: one topic, 2–6 of its labels)."""
    import scipy.sparse as sp

    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import count_cooccurrence

    rng = np.random.default_rng(random_state)
    num_topics = max(2, num_labels // 40)
    topic_of = rng.integers(0, num_topics, num_labels)
    popularity = 1.0 / np.arange(1, num_labels + 1) ** 0.8
    rows, columns = [], []
    members = [np.flatnonzero(topic_of == topic) for topic in range(num_topics)]
    for image in range(num_images):
        pool = members[rng.integers(num_topics)]
        if len(pool) == 0:
            continue
        weights = popularity[pool] / popularity[pool].sum()
        chosen = rng.choice(pool, size=min(len(pool), rng.integers(2, 7)), replace=False, p=weights)
        rows += [image] * len(chosen)
        columns += chosen.tolist()
    matrix = sp.csr_matrix((np.ones(len(rows), np.uint8), (rows, columns)), shape=(num_images, num_labels))
    return count_cooccurrence(matrix, Vocabulary([f"label{i}" for i in range(num_labels)]))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=17_000)
    parser.add_argument("--images", type=int, default=None, help="label sets to count (default: 60 per label)")
    parser.add_argument("--dim", type=int, default=1024)
    parser.add_argument("--reference", action="store_true", help="also run the exact float64 LAPACK solver")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    import warnings

    from workbench.method.eigensolvers import eigenpairs, jax_gpu_available
    from workbench.method.pmi import pmi_matrix

    began = time.perf_counter()
    counts = topic_counts(args.labels, num_images=args.images or 60 * args.labels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # labels that never occur are dropped
        pmi = pmi_matrix(counts).matrix
    prepared = time.perf_counter() - began
    began = time.perf_counter()
    values, vectors, info = eigenpairs(pmi, num_pairs=args.dim, solver="jax")
    seconds = time.perf_counter() - began
    product = pmi @ vectors
    residual = np.linalg.norm(product - vectors * values, axis=0) / np.abs(values)
    report = {"labels": int(pmi.shape[0]), "dim": int(len(values)), "gpu": jax_gpu_available(), "device": info.get("device"),
              "prepare_seconds": round(prepared, 2), "eigenpairs_seconds": round(seconds, 2),
              "eigh_seconds": info.get("eigh_seconds"), "max_relative_residual": float(residual.max())}
    if args.reference:
        began = time.perf_counter()
        exact, _, _ = eigenpairs(pmi, num_pairs=args.dim, solver="exact")
        report["exact_seconds"] = round(time.perf_counter() - began, 2)
        report["max_relative_eigenvalue_error"] = float(np.max(np.abs(values - exact) / np.abs(exact)))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
