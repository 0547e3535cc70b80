"""Operating points of a trained run, fitted on its validation images and measured on others.

Ranking metrics (MAP@100) say nothing about *which* labels to give an image. A run's
calibration chooses, for every decoder (:mod:`workbench.method.decoders`), on one part of
the run's validation split:

* the global threshold that maximises micro F1, and the one that maximises macro F1;
* one threshold per label (its own best F1; labels without a positive image there get
  the global micro-F1 threshold);
* the number ``N`` of top labels that maximises micro F1;

and measures every operating point on the *other* part (the test part), with the
label-set metrics of :func:`workbench.evaluation.metrics.label_set_metrics`, overall and by
number of true labels per image, beside MAP@100. Fitting and measuring never share an
image. The best decoder is the one with the highest micro F1 on the calibration part
(the test part only reports).

:func:`calibrate` writes ``RUN_DIR/calibration.json``; :func:`load_calibration` reads it;
``workbench calibrate RUN_DIR --data DATASET`` and ``workbench classify … --threshold
auto`` use them; :func:`calibration_frame` and :func:`calibration_table` show a calibration.
The fitting functions are NumPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import scipy.sparse as sp

from workbench import _checks
from workbench._io import atomic_write_json, read_json
from workbench.evaluation.metrics import json_number, label_set_metrics, label_set_metrics_by_count, mean_average_precision
from workbench.method.decoders import DECODERS

__all__ = [
    "CALIBRATION_FILE",
    "best_threshold",
    "macro_f1_threshold",
    "per_label_thresholds",
    "best_top_n",
    "choose_labels",
    "threshold_sweep",
    "fit_operating_points",
    "calibrate",
    "load_calibration",
    "calibrated_threshold",
    "calibration_frame",
    "calibration_table",
]

CALIBRATION_FILE = "calibration.json"
_FORMAT = "workbench-calibration"
_FORMAT_VERSION = 1
#: The operating points, in the order they are reported.
OPERATING_POINTS = ("threshold_micro_f1", "threshold_macro_f1", "per_label_thresholds", "top_n")


def _dense(labels) -> np.ndarray:
    return (labels.toarray() if sp.issparse(labels) else np.asarray(labels)) != 0


def threshold_counts(scores, labels, thresholds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per label, how many scores are ``≥ t`` and how many of those are true, for every ``t``: one sort per label.

    Parameters
    ----------
    scores : array-like of shape (N, C)
    labels : array-like or sparse matrix of shape (N, C)
    thresholds : array-like of shape (T,)

    Returns
    -------
    chosen : ndarray of shape (T, C), int64
        Images whose score for the label is at least the threshold.
    true_chosen : ndarray of shape (T, C), int64
        Those of them that carry the label.
    positives : ndarray of shape (C,), int64
        Images that carry the label.
    """
    values = np.asarray(scores, dtype=np.float64)
    truth = _dense(labels)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    num_images = values.shape[0]
    every = np.sort(values, axis=0)
    true_only = np.sort(np.where(truth, values, -np.inf), axis=0)  # non-labels sort below every finite threshold
    chosen = np.empty((len(thresholds), values.shape[1]), dtype=np.int64)
    true_chosen = np.empty_like(chosen)
    for label in range(values.shape[1]):
        chosen[:, label] = num_images - np.searchsorted(every[:, label], thresholds, side="left")
        true_chosen[:, label] = num_images - np.searchsorted(true_only[:, label], thresholds, side="left")
    return chosen, true_chosen, truth.sum(axis=0).astype(np.int64)


def _ratio(numerator, denominator) -> np.ndarray:
    """``numerator / denominator`` as floats, NaN where the denominator is 0 (scikit-learn's ``zero_division=nan``)."""
    numerator, denominator = np.asarray(numerator, dtype=np.float64), np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1.0), np.nan)


def best_threshold(scores, labels) -> tuple[float, float]:
    """The threshold ``t`` maximising micro F1 of "every score ``≥ t`` is a label", exactly.

    All scores are sorted once; F1 is evaluated at every distinct score (ties chosen
    together). The returned threshold lies halfway between the best cut's score and the
    next lower distinct score, so it does not sit on a calibration score.

    Parameters
    ----------
    scores : array-like of shape (N, C) or (N,)
    labels : array-like or sparse matrix of the same shape (non-zero = true)

    Returns
    -------
    threshold : float
    f1 : float
        Micro F1 at that threshold (0 when there is no true label).
    """
    values = np.asarray(scores, dtype=np.float64).ravel()
    truth = _dense(labels).ravel()
    if values.shape != truth.shape:
        raise ValueError(f"scores ({values.size} values) and labels ({truth.size} values) do not match.")
    positives = int(truth.sum())
    if positives == 0 or values.size == 0:
        return float(values.max(initial=0.0)) + 1.0, 0.0
    order = np.argsort(-values, kind="stable")
    sorted_values, sorted_truth = values[order], truth[order]
    true_positives = np.cumsum(sorted_truth)
    # the last position of each run of equal scores: choosing a score chooses its ties
    ends = np.flatnonzero(np.append(sorted_values[1:] != sorted_values[:-1], True))
    f1 = 2.0 * true_positives[ends] / (ends + 1 + positives)
    best = int(np.argmax(f1))
    chosen = sorted_values[ends[best]]
    below = sorted_values[ends[best] + 1] if ends[best] + 1 < len(sorted_values) else chosen - 1.0
    return float((chosen + below) / 2.0), float(f1[best])


def macro_f1_threshold(scores, labels, *, num_candidates: int = 64) -> tuple[float, float]:
    """The global threshold maximising macro F1, searched over ``num_candidates`` quantiles of the scores.

    Returns
    -------
    threshold : float
    macro_f1 : float
    """
    values = np.asarray(scores, dtype=np.float64)
    truth = _dense(labels)
    num_candidates = _checks.integer(num_candidates, "num_candidates", minimum=2)
    candidates = np.unique(np.quantile(values, np.linspace(0.0, 1.0, num_candidates)))
    chosen, true_chosen, positives = threshold_counts(values, truth, candidates)
    per_label = _ratio(2 * true_chosen, chosen + positives[None, :])  # each label's F1 (NaN: never chosen, never true)
    defined = ~np.isnan(per_label)
    macro = np.where(defined.any(axis=1), np.nansum(per_label, axis=1) / np.maximum(defined.sum(axis=1), 1), np.nan)
    best, best_f1 = float(candidates[-1]), -1.0
    for threshold, f1 in zip(candidates, macro):  # the first of equal values, as before
        if np.isfinite(f1) and f1 > best_f1:
            best, best_f1 = float(threshold), float(f1)
    return best, max(best_f1, 0.0)


def per_label_thresholds(scores, labels, *, fallback: float) -> np.ndarray:
    """Each label's own best-F1 threshold (:func:`best_threshold` on its column); ``fallback`` without positives.

    Returns
    -------
    ndarray of shape (C,), dtype float64
    """
    values = np.asarray(scores, dtype=np.float64)
    truth = _dense(labels)
    thresholds = np.full(values.shape[1], float(fallback))
    for label in np.flatnonzero(truth.any(axis=0)):
        thresholds[label], _ = best_threshold(values[:, label], truth[:, label])
    return thresholds


def choose_labels(scores, *, threshold=None, top: int | None = None) -> np.ndarray:
    """The chosen labels of every image: scores at or above ``threshold`` (a number, or one per label) or the ``top`` best.

    Returns
    -------
    ndarray of shape (N, C), dtype bool
    """
    values = np.asarray(scores)
    if (threshold is None) == (top is None):
        raise ValueError("Give threshold=T (one number or one per label) or top=N, not both.")
    if top is not None:
        top = min(_checks.integer(top, "top"), values.shape[1])
        chosen = np.zeros(values.shape, dtype=bool)
        order = np.argsort(-values, axis=1, kind="stable")[:, :top]
        np.put_along_axis(chosen, order, True, axis=1)
        return chosen
    return values >= np.asarray(threshold, dtype=np.float64)


def best_top_n(scores, labels, *, max_top: int = 10) -> tuple[int, float]:
    """The ``N`` in ``1 … max_top`` whose top-``N`` label sets have the highest micro F1.

    Returns
    -------
    top_n : int
    micro_f1 : float
    """
    truth = _dense(labels)
    results = [(label_set_metrics(choose_labels(scores, top=n), truth)["micro_f1"], -n) for n in
               range(1, min(_checks.integer(max_top, "max_top"), truth.shape[1]) + 1)]
    f1, negative_n = max(results, key=lambda item: (np.nan_to_num(item[0], nan=-1.0), item[1]))
    return -negative_n, float(np.nan_to_num(f1))


def threshold_sweep(scores, labels, *, num_thresholds: int = 101) -> dict:
    """Micro precision, recall and F1 of "every score ``≥ t`` is a label" for evenly spaced ``t``.

    Returns
    -------
    dict
        ``thresholds``, ``precision``, ``recall``, ``f1``: arrays of shape
        (num_thresholds,) spanning the scores' range (NaN precision where nothing is chosen).
    """
    values = np.asarray(scores, dtype=np.float64)
    truth = _dense(labels)
    num_thresholds = _checks.integer(num_thresholds, "num_thresholds", minimum=2)
    thresholds = np.linspace(values.min(), values.max(), num_thresholds)
    chosen, true_chosen, positives = threshold_counts(values, truth, thresholds)
    hits, picked, wanted = true_chosen.sum(axis=1), chosen.sum(axis=1), positives.sum()
    return {"thresholds": thresholds, "precision": _ratio(hits, picked), "recall": _ratio(hits, np.full_like(hits, wanted)),
            "f1": _ratio(2 * hits, picked + wanted)}


def fit_operating_points(scores, labels, *, max_top: int = 10) -> dict:
    """Every operating point of one decoder's scores, fitted on these images.

    Returns
    -------
    dict
        ``threshold_micro_f1``, ``threshold_macro_f1`` (floats), ``per_label_thresholds``
        (list of C floats), ``top_n`` (int).
    """
    micro, _ = best_threshold(scores, labels)
    macro, _ = macro_f1_threshold(scores, labels)
    top_n, _ = best_top_n(scores, labels, max_top=max_top)
    return {
        "threshold_micro_f1": micro,
        "threshold_macro_f1": macro,
        "per_label_thresholds": per_label_thresholds(scores, labels, fallback=micro).tolist(),
        "top_n": int(top_n),
    }


def _chosen_at(point: str, fitted: dict, scores) -> np.ndarray:
    if point == "top_n":
        return choose_labels(scores, top=fitted["top_n"])
    return choose_labels(scores, threshold=fitted[point])


def _finite_dict(metrics: dict) -> dict:
    return {key: (json_number(value) if isinstance(value, float) else value) for key, value in metrics.items()}


def measure(scores, labels, fitted: dict) -> dict:
    """Label-set metrics of every operating point in ``fitted``, and MAP@100, on these images."""
    truth = _dense(labels)
    out = {"map_at_100": json_number(mean_average_precision(scores, truth, k=100))}
    for point in OPERATING_POINTS:
        chosen = _chosen_at(point, fitted, scores)
        out[point] = _finite_dict(label_set_metrics(chosen, truth))
        out[point]["by_num_labels"] = {count: _finite_dict(values) for count, values in
                                       label_set_metrics_by_count(chosen, truth).items()}
    return out


def calibrate(
    run,
    dataset,
    *,
    decoders=None,
    test_fraction: float = 0.5,
    random_state: int = 0,
    max_top: int = 10,
    batch_size: int = 256,
) -> dict:
    """Fit every decoder's operating points on part of the run's validation split; measure them on the rest.

    Parameters
    ----------
    run : TrainedRun
        A loaded run (:func:`workbench.learning.runs.load_run`); its calibration is written
        to ``run.run_dir``.
    dataset : MultiLabelDataset
        The data set the run was trained on (checked: its split must be the run's).
    decoders : sequence of str, optional
        Some of :data:`~workbench.method.decoders.DECODERS`; default: all of them for an
        embedding head, ``("cosine",)`` (its own probabilities) for the sigmoid head.
    test_fraction : float, default=0.5
        Share of the validation images kept apart to measure the fitted operating points.
    random_state : int, default=0
        Seed of the calibration/test division.

    Returns
    -------
    dict
        What ``RUN_DIR/calibration.json`` holds: ``decoders`` (``{name: {"fitted": …,
        "calibration": metrics, "test": metrics}}``), ``best`` (decoder and operating
        point with the highest calibration micro F1), and the images of each part.
    """
    run_dir = run.run_dir
    if decoders is None:
        decoders = DECODERS if run.embedding is not None else ("cosine",)
    decoders = [_checks.choice(name, "decoder", DECODERS) for name in decoders]
    if run.embedding is None and decoders != ["cosine"]:
        raise ValueError("A sigmoid run has no label vectors to decode; calibrate it with decoders=['cosine'] (--decoders cosine).")
    test_fraction = _checks.number(test_fraction, "test_fraction")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1; got {test_fraction!r}.")
    _, validation = run.splits(dataset)
    recorded = read_json(Path(run_dir) / "config.json").get("data", {}).get("fingerprint")
    if len(validation) < 4:
        raise ValueError(f"The run's validation split has {len(validation)} images; calibration needs at least 4.")
    positions = np.random.default_rng(random_state).permutation(len(validation))
    num_test = min(max(1, round(test_fraction * len(validation))), len(validation) - 1)
    test_rows, calibration_rows = np.sort(positions[:num_test]), np.sort(positions[num_test:])
    images = run.images_of(validation)
    truth = validation.labels.toarray() != 0
    outputs = run.predict_points(images, batch_size=batch_size)
    report = {"format": _FORMAT, "format_version": _FORMAT_VERSION, "head": run.head, "decoders": {},
              "calibration_images": [validation.image_paths[i] for i in calibration_rows],
              "test_images": [validation.image_paths[i] for i in test_rows],
              "test_fraction": test_fraction, "random_state": int(random_state),
              "data_fingerprint": recorded}
    best = None
    for decoder in decoders:
        scores = run.scores_of_outputs(outputs, decoder=decoder)
        fitted = fit_operating_points(scores[calibration_rows], truth[calibration_rows], max_top=max_top)
        calibration = measure(scores[calibration_rows], truth[calibration_rows], fitted)
        report["decoders"][decoder] = {"fitted": fitted, "calibration": calibration,
                                       "test": measure(scores[test_rows], truth[test_rows], fitted)}
        for point in OPERATING_POINTS:
            f1 = calibration[point]["micro_f1"] or 0.0
            if best is None or f1 > best[2]:
                best = (decoder, point, f1)
    report["best"] = {"decoder": best[0], "operating_point": best[1], "calibration_micro_f1": best[2]}
    atomic_write_json(Path(run_dir) / CALIBRATION_FILE, report)
    return report


def load_calibration(run_dir) -> dict:
    """``RUN_DIR/calibration.json``; a one-line ``ValueError`` saying to run ``workbench calibrate`` when absent."""
    path = Path(run_dir) / CALIBRATION_FILE
    if not path.is_file():
        raise ValueError(f"{run_dir} is not calibrated; run 'workbench calibrate {run_dir} --data DATASET' first.")
    report = read_json(path)
    if not isinstance(report, dict) or report.get("format") != _FORMAT or not isinstance(report.get("decoders"), dict):
        raise ValueError(f"{path} is not a calibration written by 'workbench calibrate'; run it again.")
    return report


def calibrated_threshold(run_dir, *, decoder: str = "cosine") -> float:
    """The global micro-F1 threshold of ``decoder`` from the run's calibration (``--threshold auto``)."""
    report = load_calibration(run_dir)
    if decoder not in report["decoders"]:
        raise ValueError(f"{run_dir} was calibrated for {', '.join(report['decoders'])}, not {decoder!r}; run "
                         f"'workbench calibrate {run_dir} --data DATASET --decoders {decoder}'.")
    return float(report["decoders"][decoder]["fitted"]["threshold_micro_f1"])


def calibration_frame(report: dict):
    """A calibration (:func:`calibrate`'s report) as a :class:`pandas.DataFrame`, one row per decoder and operating point.

    Columns: ``decoder``, ``operating_point`` (one of :data:`OPERATING_POINTS`),
    ``threshold`` (the fitted global threshold; NaN for per-label thresholds and top-N),
    ``top_n`` (NaN but for top-N), ``calibration_micro_f1`` (on the images it was fitted on),
    then on the test images: ``micro_f1``, ``macro_f1``, ``micro_precision``,
    ``micro_recall``, ``exact_set_accuracy``, ``count_mae`` and the decoder's ``map_at_100``.
    Every number is a float; a metric that is undefined there is NaN.
    """
    import pandas as pd

    def number(value) -> float:
        return float("nan") if value is None else float(value)

    metrics = ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_set_accuracy", "count_mae")
    records = []
    for decoder, entry in report["decoders"].items():
        fitted, test = entry["fitted"], entry["test"]
        for point in OPERATING_POINTS:
            records.append({
                "decoder": decoder, "operating_point": point,
                "threshold": number(fitted[point]) if point.startswith("threshold_") else float("nan"),
                "top_n": number(fitted[point]) if point == "top_n" else float("nan"),
                "calibration_micro_f1": number(entry["calibration"][point].get("micro_f1")),
                **{key: number(test[point].get(key)) for key in metrics},
                "map_at_100": number(test["map_at_100"]),
            })
    columns = ["decoder", "operating_point", "threshold", "top_n", "calibration_micro_f1", *metrics, "map_at_100"]
    return pd.DataFrame.from_records(records, columns=columns)


def calibration_table(report: dict) -> str:
    """:func:`calibration_frame` as text: how many images each part had, every operating point on the test images, the best."""
    import pandas as pd

    from workbench._tables import text_table

    frame = calibration_frame(report)
    settings = [f"top {int(top)}" if point == "top_n" else "one per label" if point == "per_label_thresholds"
                else f">= {threshold:.3f}" for point, threshold, top in zip(frame["operating_point"], frame["threshold"],
                                                                            frame["top_n"])]
    shown = pd.DataFrame({"decoder": frame["decoder"], "operating point": frame["operating_point"], "setting": settings,
                          "micro F1": frame["micro_f1"], "macro F1": frame["macro_f1"],
                          "precision": frame["micro_precision"], "recall": frame["micro_recall"],
                          "exact set": frame["exact_set_accuracy"], "MAP@100": frame["map_at_100"]})
    best = report["best"]
    return "\n".join([f"calibrated on {len(report['calibration_images'])} validation images, measured on "
                      f"{len(report['test_images'])} others:", text_table(shown, indent="  "),
                      f"best on the calibration images: {best['decoder']} at {best['operating_point']}"])
