"""Reading a head comparison: final metric per head over seeds, and epochs to reach a reference.

Pure functions of the ``results`` dict that :func:`workbench.learning.experiments.compare` returns
and writes as ``results.json``. Kept apart from :mod:`workbench.learning.training` so that the
main job's summary, plots and notebooks can read a comparison without importing Keras.
"""

from __future__ import annotations

import numpy as np

from workbench.learning.statistics import LAST_EPOCHS

__all__ = ["summarize_comparison", "comparison_table"]


def summarize_comparison(results: dict, *, metric: str = "map_at_100", reference_head: str = "sigmoid") -> dict:
    """Final metric per head (mean and spread over seeds) and epochs to reach the reference.

    Parameters
    ----------
    results : dict
        As returned by :func:`compare` (or read from ``results.json``).
    metric : str, default="map_at_100"
    reference_head : str, default="sigmoid"

    Returns
    -------
    dict
        ``{head: {"final_mean", "final_std", "num_seeds", "epochs_to_reference"}}``.
        A run's final value is the mean of its last ``min(3, epochs)`` epochs (one epoch is
        noisy; :data:`workbench.learning.statistics.LAST_EPOCHS`); ``final_mean`` and
        ``final_std`` are their mean and sample standard deviation over seeds (0 for one
        seed). The reference is the reference head's mean curve at its last epoch.
        ``epochs_to_reference`` is the first epoch at which the head's seed-mean
        curve reaches the reference head's final seed-mean value (``None`` if it
        never does, or without the reference head). Curves are cut to the shortest
        run of the head.
    """
    curves: dict[str, list[list[float]]] = {}
    for run in results["runs"]:
        values = [np.nan if record.get(metric) is None else float(record[metric]) for record in run["history"]]
        curves.setdefault(run["head"], []).append(values)
    means = {}
    summary = {}
    for head, runs in curves.items():
        length = min(len(values) for values in runs)
        matrix = np.array([values[:length] for values in runs], dtype=np.float64)
        means[head] = matrix.mean(axis=0)
        finals = matrix[:, -LAST_EPOCHS:].mean(axis=1) if length else np.array([np.nan])
        summary[head] = {
            "final_mean": float(np.mean(finals)),
            "final_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
            "num_seeds": len(runs),
            "epochs_to_reference": None,
        }
    if reference_head in means and len(means[reference_head]):
        target = means[reference_head][-1]
        for head, mean in means.items():
            reached = np.flatnonzero(mean >= target - 1e-12)
            summary[head]["epochs_to_reference"] = int(reached[0]) + 1 if len(reached) else None
    return summary


def comparison_table(results: dict, *, metric: str = "map_at_100", reference_head: str = "sigmoid") -> str:
    """The comparison as a text table: final metric (mean ± std over seeds) and epochs to reach the reference head."""
    summary = summarize_comparison(results, metric=metric, reference_head=reference_head)
    name = metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP")
    reference = summary.get(reference_head)
    target = f" ({_last_of_mean(results, reference_head, metric):.4f})" if reference else ""
    header_last = f"epochs to reach {reference_head}'s last {name}{target}"
    rows = [("head", f"final {name}, last 3 epochs (mean ± std)", "seeds", header_last)]
    for head, values in summary.items():
        epochs = values["epochs_to_reference"]
        rows.append(
            (
                head,
                f"{values['final_mean']:.4f} ± {values['final_std']:.4f}",
                str(values["num_seeds"]),
                "—" if epochs is None else str(epochs),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _last_of_mean(results: dict, head: str, metric: str) -> float:
    """The last epoch of ``head``'s mean curve over seeds (the reference of ``epochs_to_reference``)."""
    curves = [[np.nan if r.get(metric) is None else float(r[metric]) for r in run["history"]]
              for run in results["runs"] if run["head"] == head]
    length = min(len(curve) for curve in curves)
    return float(np.mean([curve[length - 1] for curve in curves])) if length else float("nan")
