"""Reading results, the one place: a comparison's summary and statistics, an experiment's rows and tables.

A comparison (``workbench compare``: every head and seed against one embedding, its
``results.json``) is read by :func:`summarize_comparison`, :func:`comparison_table` and
:func:`comparison_statistics`; an experiment (``workbench experiment``: a grid of such
comparisons, one per cell) by :func:`collect_results` into one row per finished
(cell, head, seed), paired tests and ``results.csv``/``results.json``.

Read from the cell folders :mod:`workbench.experiments.experiment` writes (Keras-free, so the
results can be read and plotted anywhere). Each row's ``map_at_100`` and ``macro_ap``
are the mean of the run's last ``min(3, epochs)`` epochs
(:func:`workbench.evaluation.statistics.final_value`); ``map_at_100_low``/``_high`` the 95 %
percentile bootstrap interval over validation images of each image's AP averaged over
those epochs (seeded by the run's seed, so a rerun gives the same interval). Paired
tests compare pmi with random in every cell that has both with the same seeds
(:func:`workbench.evaluation.statistics.paired_difference`).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from workbench._io import atomic_write_json, atomic_write_text, read_json
from workbench.evaluation.statistics import (
    LAST_EPOCHS,
    bootstrap_interval,
    final_image_values,
    final_value,
    paired_difference,
    read_image_ap,
)

__all__ = ["RESULT_COLUMNS", "collect_results", "write_results", "results_table", "read_results",
           "comparison_statistics", "statistics_table", "summarize_comparison", "comparison_table"]

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = ("cell", "head", "dim", "dim_achieved", "pmi", "diagonal", "negative", "seed", "num_labels", "num_images",
                  "missing_rate", "spurious_rate", "data_seed", "image_size", "epochs", "learning_rate",
                  "map_at_100", "map_at_100_low", "map_at_100_high", "macro_ap", "last_epoch_map_at_100",
                  "ceiling_map_at_100", "companion_share", "seconds")


def _ceiling_of(folder: Path, head: str) -> float | None:
    path = folder / "ceiling.json"
    if not path.is_file():
        return None
    rows = read_json(path).get("rows", [])
    values = [row.get("map_at_100") for row in rows if row.get("embedding") == head]
    return values[0] if values else None


def _image_values(folder: Path, head: str, seed: int, epochs: int):
    """A run's per-image final values and their bootstrap interval: ``(values, low, high)``, ``None``s without them."""
    image_ap = read_image_ap(folder / "runs" / f"{head}-seed{seed}", num_epochs=epochs) if epochs else None
    if image_ap is None:
        return None, None, None
    values = final_image_values(image_ap, last=LAST_EPOCHS)
    low, high = bootstrap_interval(values, random_state=seed)
    return values, low, high


def _rows_of_cell(folder: Path, cell, heads, seeds) -> tuple[list[dict], list[dict], dict]:
    """Rows, histories and per-image final values ``{(head, seed): array}`` of one cell's finished runs."""
    results = read_json(folder / "results.json") if (folder / "results.json").is_file() else {"runs": [], "config": {}}
    config = results.get("config", {})
    cell_record = read_json(folder / "cell.json") if (folder / "cell.json").is_file() else {}
    rates = cell_record.get("learning_rates") or config.get("learning_rates") or {}
    rows, histories, image_values, analyses = [], [], {}, []
    for run in results.get("runs", []):
        head, seed, history = run["head"], run["seed"], run["history"]
        if head not in heads or seed not in seeds or len(history) < cell.train["epochs"]:
            continue  # a run of a larger grid, or not finished
        history = history[: cell.train["epochs"]]
        values, low, high = _image_values(folder, head, seed, len(history))
        if values is not None:
            image_values[(head, seed)] = values
        data = cell.data
        uses_embedding = head in ("pmi", "random")
        rows.append({
            "cell": cell.name, "head": head,
            "dim": cell.embedding["dim"] if uses_embedding and cell.embedding else
            (config.get("num_labels") if head == "identity" else None),
            "dim_achieved": config.get("embedding_dim") if uses_embedding else
            (config.get("num_labels") if head == "identity" else None),
            "pmi": cell.embedding["pmi"] if head == "pmi" and cell.embedding else None,
            "diagonal": cell.embedding["diagonal"] if head == "pmi" and cell.embedding else None,
            "negative": cell.embedding["negative"] if head == "pmi" and cell.embedding else None,
            "seed": seed, "num_labels": config.get("num_labels"), "num_images": config.get("num_images"),
            "missing_rate": data.get("missing_rate"), "spurious_rate": data.get("spurious_rate"),
            "data_seed": data.get("seed"), "image_size": cell.train["image_size"], "epochs": len(history),
            "learning_rate": rates.get(head),
            "map_at_100": final_value(history, "map_at_100"),
            "map_at_100_low": low, "map_at_100_high": high,
            "macro_ap": final_value(history, "macro_ap"),
            "last_epoch_map_at_100": history[-1].get("map_at_100"),
            "ceiling_map_at_100": _ceiling_of(folder, head),
            "companion_share": None,
            "seconds": round(sum(record.get("seconds", 0.0) for record in history), 3),
        })
        analysis_path = folder / "runs" / f"{head}-seed{seed}" / "analysis.json"
        if analysis_path.is_file():
            analysis = read_json(analysis_path)
            rows[-1]["companion_share"] = analysis.get("companion_share_top")
            analyses.append({"cell": cell.name, "head": head, "seed": seed, **analysis})
        histories.append({"cell": cell.name, "head": head, "seed": seed, "history": history})
    return rows, histories, image_values, analyses


def _per_label(analyses: list[dict]) -> list[dict]:
    """Per (cell, head): every label's AP averaged over seeds, beside its training count; and the confident errors."""
    groups: dict = {}
    for analysis in analyses:
        groups.setdefault((analysis["cell"], analysis["head"]), []).append(analysis)
    summary = []
    for (cell, head), runs in groups.items():
        values = np.array([[np.nan if value is None else value for value in run["per_label_ap"]] for run in runs])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a label absent from validation: NaN for every seed
            mean = np.nanmean(values, axis=0) if len(values) else values
        summary.append({
            "cell": cell, "head": head, "seeds": [run["seed"] for run in runs], "labels": runs[0]["labels"],
            "train_counts": runs[0]["train_counts"], "validation_counts": runs[0]["validation_counts"],
            "per_label_ap": [None if np.isnan(value) else float(value) for value in mean],
            "companion_share_top": float(np.mean([run["companion_share_top"] or 0.0 for run in runs])),
            "companion_share_all": float(np.mean([run["companion_share_all"] or 0.0 for run in runs])),
            "companion_share_chance": float(np.mean([run.get("companion_share_chance") or 0.0 for run in runs])),
            "errors": runs[0]["errors"],  # of the first seed
        })
    return summary


def collect_results(out_dir: str | Path, cells, *, grid: dict | None = None, provenance: dict | None = None) -> dict:
    """Everything finished so far in the cells of a grid.

    Returns
    -------
    dict
        ``{"grid": {...}, "rows": [...], "histories": [{"cell", "head", "seed", "history"}], "paired":
        [{"cell", "first": "pmi", "second": "random", "difference", "low", "high", …}], "per_label": [{"cell",
        "head", "labels", "train_counts", "per_label_ap" (mean over seeds), "companion_share_top", "errors"}],
        "cells": {name: {"status", "settings", "seconds"}}, "provenance": {...}}``.
    """
    out_dir = Path(out_dir)
    rows, histories, paired, states, analyses = [], [], [], {}, []
    for cell in cells:
        folder = out_dir / "cells" / cell.name
        record = read_json(folder / "cell.json") if (folder / "cell.json").is_file() else {}
        states[cell.name] = {"status": record.get("status", "not started"), "settings": cell.settings(),
                             "seconds": record.get("seconds"), "learning_rates": record.get("learning_rates"),
                             "tuning": record.get("tuning")}
        if not folder.is_dir():
            continue
        cell_rows, cell_histories, values, cell_analyses = _rows_of_cell(folder, cell, set(cell.heads), set(cell.seeds))
        analyses += cell_analyses
        rows += cell_rows
        histories += cell_histories
        common = sorted(seed for seed in cell.seeds if ("pmi", seed) in values and ("random", seed) in values)
        if common:
            test = paired_difference([values[("pmi", seed)] for seed in common],
                                     [values[("random", seed)] for seed in common], random_state=0)
            paired.append({"cell": cell.name, "first": "pmi", "second": "random", "seeds": common, **test})
    return {"grid": grid or {}, "rows": rows, "histories": histories, "paired": paired, "per_label": _per_label(analyses),
            "cells": states,
            "provenance": provenance or {}}


def _csv_text(rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=RESULT_COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row.get(key) is None else row[key] for key in RESULT_COLUMNS})
    return buffer.getvalue()


def write_results(out_dir: str | Path, results: dict) -> None:
    """Write ``results.csv`` (the rows) and ``results.json`` (everything), each atomically."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.csv", _csv_text(results["rows"]))
    atomic_write_json(out_dir / "results.json", results)


def read_results(out_dir: str | Path) -> dict:
    """``DIR/results.json`` of an experiment."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run 'workbench experiment --grid GRID.toml --out {out_dir}' first.")
    return read_json(path)


def _mean_std(values) -> str:
    values = np.asarray([value for value in values if value is not None], dtype=np.float64)
    if not len(values):
        return "—"
    spread = np.std(values, ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}"


def results_table(results: dict) -> str:
    """One line per (cell, head): MAP@100 mean ± std over seeds, mean bootstrap interval, ceiling; then the paired tests."""
    groups: dict = {}
    for row in results["rows"]:
        groups.setdefault((row["cell"], row["head"]), []).append(row)
    lines = [("cell", "head", "seeds", "MAP@100 (last 3 epochs)", "95% interval (mean)", "ceiling", "macro AP")]
    for (cell, head), rows in groups.items():
        lows = [row["map_at_100_low"] for row in rows if row["map_at_100_low"] is not None]
        highs = [row["map_at_100_high"] for row in rows if row["map_at_100_high"] is not None]
        ceiling = rows[0]["ceiling_map_at_100"]
        lines.append((cell, head, str(len(rows)), _mean_std(row["map_at_100"] for row in rows),
                      f"[{np.mean(lows):.3f}, {np.mean(highs):.3f}]" if lows else "—",
                      "—" if ceiling is None else f"{ceiling:.3f}", _mean_std(row["macro_ap"] for row in rows)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    for test in results.get("paired", []):
        verdict = {True: "pmi beats random", False: "random beats pmi", None: "no difference beyond the interval"}
        pvalue = "—" if test["t_pvalue"] is None else f"{test['t_pvalue']:.3f}"
        text.append(f"{test['cell']}: pmi − random = {test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}]"
                    f" over {test['num_seeds']} seed(s), {test['wins']} won, paired t p = {pvalue}: "
                    f"{verdict[test['beats']]}")
    return "\n".join(text)


def comparison_statistics(folder: str | Path, *, first: str = "pmi", second: str = "random") -> dict:
    """The honest statistics of one comparison folder (``workbench compare``, a notebook's, or a cell's).

    Returns
    -------
    dict
        ``runs``: per run ``{"head", "seed", "epochs", "map_at_100"`` (mean of the last
        3 epochs), ``"low", "high"`` (95 % bootstrap over validation images; ``None`` for
        runs written before per-image values were kept), ``"macro_ap"}``; ``paired``: the
        paired test of ``first`` against ``second`` over their common seeds
        (:func:`workbench.evaluation.statistics.paired_difference`), or ``None``.
    """
    folder = Path(folder)
    results = read_json(folder / "results.json")
    runs, values = [], {}
    for run in results.get("runs", []):
        head, seed, history = run["head"], run["seed"], run["history"]
        run_values, low, high = _image_values(folder, head, seed, len(history))
        if run_values is not None:
            values[(head, seed)] = run_values
        runs.append({"head": head, "seed": seed, "epochs": len(history), "map_at_100": final_value(history),
                     "low": low, "high": high, "macro_ap": final_value(history, "macro_ap")})
    seeds = sorted(seed for (head, seed) in values if head == first and (second, seed) in values)
    paired = None
    if seeds:
        paired = {"first": first, "second": second, "seeds": seeds,
                  **paired_difference([values[(first, seed)] for seed in seeds],
                                      [values[(second, seed)] for seed in seeds], random_state=0)}
    return {"runs": runs, "paired": paired}


def statistics_table(statistics: dict) -> str:
    """:func:`comparison_statistics` as text: one line per run, then the paired test in words."""
    lines = [("head", "seed", "epochs", "MAP@100 (last 3 epochs)", "95% interval over images", "macro AP")]
    for run in statistics["runs"]:
        interval = "—" if run["low"] is None else f"[{run['low']:.3f}, {run['high']:.3f}]"
        value = "—" if run["map_at_100"] is None else f"{run['map_at_100']:.3f}"
        macro = "—" if run["macro_ap"] is None else f"{run['macro_ap']:.3f}"
        lines.append((run["head"], str(run["seed"]), str(run["epochs"]), value, interval, macro))
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = ["  ".join(value.ljust(width) for value, width in zip(line, widths)).rstrip() for line in lines]
    text.insert(1, "  ".join("-" * width for width in widths))
    test = statistics.get("paired")
    if test:
        verdict = {True: f"{test['first']} beats {test['second']}", False: f"{test['second']} beats {test['first']}",
                   None: "no difference beyond the interval"}[test["beats"]]
        text.append(f"{test['first']} − {test['second']} = {test['difference']:+.3f}, 95% interval "
                    f"[{test['low']:+.3f}, {test['high']:+.3f}] (seeds and images resampled) over {test['num_seeds']} "
                    f"seed(s): {verdict}")
    return "\n".join(text)

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
        A run's final value is :func:`~workbench.evaluation.statistics.final_value` (the
        mean of its last ``min(3, epochs)`` epochs: one epoch is noisy); ``final_mean`` and
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
        finals = np.array([np.nan if value is None else value for value in
                           (final_value(run["history"], metric) for run in results["runs"] if run["head"] == head)])
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
