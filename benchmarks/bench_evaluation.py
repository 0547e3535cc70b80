"""The per-epoch evaluation of a study run: this version against the one before it, measured in the same run.

After every epoch a run of a study scores its validation split in full (MAP@100 on the noisy
and the clean labels, macro AP, P@5, R@5: :func:`workbench.evaluation.metrics.ranking_metrics`)
and its stopping rule scores the hold-out of the training split; a learning-rate tuning run
scores its hold-out only. In the two-stage protocol at C = 1,870 that evaluation costs more
than the training of a head on cached features, so it decides much of the study's time.

Two changes are measured, each against the previous code kept here as the baseline:

* **the top-k ranking** (:func:`workbench.evaluation.metrics._top_k`): the selected ``k``
  are now sorted by column and then stably by score (one ``argsort``) instead of a
  two-key ``lexsort``, and float scores are negated in their own type instead of being
  copied to float64 first;
* **the hold-out scored by MAP@100 alone** (``EvaluationCallback(measure="map")``): the
  stopping rule and a tuning run read that value only; they used to compute every metric.

Every figure is checked first: the new and the old code must give the same metrics
(exactly). Three families of scores, so no single shape decides the verdict:

``cosine-1870``
    the C = 1,870 study: cosines of random 256-d outputs with random label vectors,
    20,000 validation and 12,000 hold-out images, about 4 labels per image (Zipf frequencies),
    clean labels differing from the noisy ones in about 10 % of the pairs;
``sigmoid-ties-1870``
    the same shapes, scores rounded to three decimals (saturated sigmoid outputs: many ties,
    the rows where a tie straddles the 100th score take the full sort);
``cosine-500``
    the 500-label study: 1,200 validation and 720 hold-out images.

Usage::

    .venv/bin/python benchmarks/bench_evaluation.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.evaluation import metrics  # noqa: E402

FAMILIES = {
    "cosine-1870": {"labels": 1870, "validation": 20_000, "holdout": 12_000, "ties": False},
    "sigmoid-ties-1870": {"labels": 1870, "validation": 20_000, "holdout": 12_000, "ties": True},
    "cosine-500": {"labels": 500, "validation": 1_200, "holdout": 720, "ties": False},
}


def previous_top_k(block: np.ndarray, k: int) -> np.ndarray:
    """The ranking as it was before: float64 copy, partition, two-key lexsort of the selected."""
    negated = -np.asarray(block, dtype=np.float64)
    if k >= negated.shape[1]:
        return np.argsort(negated, axis=1, kind="stable")[:, :k]
    chosen = np.argpartition(negated, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(negated, chosen, axis=1)
    boundary = values.max(axis=1, keepdims=True)
    top = np.take_along_axis(chosen, np.lexsort((chosen, values), axis=1), axis=1)
    straddling = np.count_nonzero(negated <= boundary, axis=1) > k
    if straddling.any():
        top[straddling] = np.argsort(negated[straddling], axis=1, kind="stable")[:, :k]
    return top


def _problem(num_images: int, num_labels: int, *, ties: bool, random_state: int):
    """Scores, noisy labels and clean labels of one split."""
    rng = np.random.default_rng(random_state)
    outputs = rng.standard_normal((num_images, 256)).astype(np.float32)
    vectors = rng.standard_normal((num_labels, 256)).astype(np.float32)
    outputs /= np.linalg.norm(outputs, axis=1, keepdims=True)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = outputs @ vectors.T
    if ties:
        scores = np.round(1 / (1 + np.exp(-8 * scores)), 3).astype(np.float32)
    frequency = 1 / np.arange(1, num_labels + 1)
    frequency *= 4 / frequency.sum()  # about 4 labels an image
    clean = sp.csr_matrix(rng.random((num_images, num_labels)) < np.minimum(frequency, 1)[rng.permutation(num_labels)])
    noise = sp.csr_matrix(rng.random((num_images, num_labels)) < 0.4 / num_labels)  # spurious labels
    kept = clean.multiply(sp.csr_matrix(rng.random(clean.shape) < 0.9).astype(np.uint8))  # missing labels
    noisy = ((kept + noise) > 0).astype(np.uint8)
    return scores, sp.csr_matrix(noisy), clean.astype(np.uint8)


def _best_of(repeats: int, function):
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - began)
    return best, result


def measure(family: dict, *, repeats: int) -> dict:
    """Seconds of one epoch's evaluation, previous and current, with the metrics of each checked equal."""
    scores, labels, clean = _problem(family["validation"], family["labels"], ties=family["ties"], random_state=0)
    holdout_scores, holdout_labels, _ = _problem(family["holdout"], family["labels"], ties=family["ties"], random_state=1)

    def validation():
        return metrics.ranking_metrics(scores, labels, clean_labels=clean)[1]

    def holdout_in_full():
        return metrics.ranking_metrics(holdout_scores, holdout_labels)[1]["map_at_100"]

    def holdout_alone():
        return metrics.mean_average_precision(holdout_scores, holdout_labels, k=100)

    current_top_k = metrics._top_k
    try:
        metrics._top_k = previous_top_k
        old_validation, old_metrics = _best_of(repeats, validation)
        old_holdout, old_value = _best_of(repeats, holdout_in_full)
    finally:
        metrics._top_k = current_top_k
    new_validation, new_metrics = _best_of(repeats, validation)
    new_holdout, new_value = _best_of(repeats, holdout_alone)
    if new_metrics != old_metrics or new_value != old_value:
        raise AssertionError(f"the metrics changed: {old_metrics} / {old_value} against {new_metrics} / {new_value}")
    macro, _ = _best_of(repeats, lambda: metrics.macro_average_precision(scores, labels))
    return {"old_validation": old_validation, "new_validation": new_validation, "old_holdout": old_holdout,
            "new_holdout": new_holdout, "macro_ap": macro}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="each timing is the best of this many")
    parser.add_argument("--families", default=",".join(FAMILIES))
    args = parser.parse_args(argv)
    try:
        load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        load = "unknown"
    print(f"bench_evaluation: one epoch's evaluation, previous code against this one (best of {args.repeats}); "
          f"load average {load} on {os.cpu_count()} cores; every metric checked equal")
    print(f"\n{'family':<20}{'validation ms/1k':>18}{'':>8}{'ratio':>7}{'hold-out ms/1k':>16}{'':>8}{'ratio':>7}"
          f"{'macro AP ms/1k':>16}")
    print(f"{'':<20}{'before':>9}{'now':>9}{'':>8}{'':>7}{'before':>8}{'now':>8}{'':>8}{'':>7}")
    for name in args.families.split(","):
        family = FAMILIES[name]
        result = measure(family, repeats=args.repeats)
        per_validation, per_holdout = 1e6 / family["validation"], 1e6 / family["holdout"]
        print(f"{name:<20}{result['old_validation'] * per_validation:>9.1f}{result['new_validation'] * per_validation:>9.1f}"
              f"{'':>8}{result['new_validation'] / result['old_validation']:>7.2f}"
              f"{result['old_holdout'] * per_holdout:>8.1f}{result['new_holdout'] * per_holdout:>8.1f}{'':>8}"
              f"{result['new_holdout'] / result['old_holdout']:>7.2f}{result['macro_ap'] * per_validation:>16.1f}")
    print("\nms/1k: milliseconds of metrics per 1,000 scored images (the scores given; the model's prediction and the "
          "cosine scoring are not included). Validation: MAP@100 on noisy and clean labels, macro AP, P@5, R@5; hold-out: "
          "before every metric, now MAP@100 alone.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
