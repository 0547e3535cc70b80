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
those epochs (seeded by the run's seed, so a rerun gives the same interval);
``map_at_100_clean`` the same mean of MAP@100 against the clean labels (empty when the data
set does not know them: only generated scenes do). Paired
tests compare heads in every setting of the grid (:mod:`workbench.experiments.comparisons`:
which pairs, Holm across the grid, pooled over k; ``comparisons.csv``).
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path

import numpy as np

from workbench._io import atomic_write_json, atomic_write_text, read_json
from workbench._tables import text_table
from workbench.evaluation.statistics import (
    LAST_EPOCHS,
    bootstrap_interval,
    final_image_values,
    final_value,
    paired_difference,
    read_image_ap,
)
from workbench.experiments.comparisons import comparisons_csv, comparisons_text, grid_comparisons
from workbench.method.targets import K_HEADS

__all__ = ["RESULT_COLUMNS", "collect_results", "write_results", "results_frame", "results_table", "read_results",
           "comparison_statistics", "statistics_frame", "statistics_table", "summarize_comparison", "comparison_frame",
           "comparison_table", "equal_time_frame"]

#: Columns of ``results.csv``, in order.
RESULT_COLUMNS = ("cell", "head", "dim", "dim_achieved", "pmi", "diagonal", "negative", "seed", "num_labels", "num_images",
                  "missing_rate", "spurious_rate", "data_seed", "image_size", "protocol", "epochs", "learning_rate", "epochs_to_convergence",
                  "map_at_100", "map_at_100_low", "map_at_100_high", "map_at_100_clean", "macro_ap", "last_epoch_map_at_100",
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
        stopping = run.get("stopping") or {}
        if head not in heads or seed not in seeds or (len(history) < cell.train["epochs"]
                                                      and stopping.get("stopped_epoch") is None):
            continue  # a run of a larger grid, or not finished (a run the stopping rule stopped is)
        history = history[: cell.train["epochs"]]
        values, low, high = _image_values(folder, head, seed, len(history))
        if values is not None:
            image_values[(head, seed)] = values
        data = cell.data
        uses_embedding = head in K_HEADS  # heads that depend on k
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
            "data_seed": data.get("seed"), "image_size": cell.train["image_size"],
            "protocol": config.get("protocol", "end-to-end"),  # two-stage: heads trained on one trunk's features
            "epochs": len(history),
            "learning_rate": rates.get(head),  # the starting rate: tuned (cell.json) or fixed
            "epochs_to_convergence": stopping.get("epochs_to_convergence"),
            "map_at_100": final_value(history, "map_at_100"),
            "map_at_100_low": low, "map_at_100_high": high,
            "map_at_100_clean": final_value(history, "map_at_100_clean"),  # None: the data set knows no clean labels
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
        ``{"grid": {...}, "rows": [...], "histories": [{"cell", "head", "seed", "history"}], "comparisons":
        [{"cell", "num_labels", "dim", "head", "baseline", "difference", "low", "high", "p_value", "p_adjusted",
        "verdict", …}], "pooled": [...] (:func:`workbench.experiments.comparisons.grid_comparisons`), "per_label": [{"cell",
        "head", "labels", "train_counts", "per_label_ap" (mean over seeds), "companion_share_top", "errors"}],
        "cells": {name: {"status", "settings", "seconds"}}, "provenance": {...}}``.
    """
    out_dir = Path(out_dir)
    rows, histories, states, analyses, values, num_labels = [], [], {}, [], {}, {}
    for cell in cells:
        folder = out_dir / "cells" / cell.name
        record = read_json(folder / "cell.json") if (folder / "cell.json").is_file() else {}
        states[cell.name] = {"status": record.get("status", "not started"), "settings": cell.settings(),
                             "seconds": record.get("seconds"), "learning_rates": record.get("learning_rates"),
                             "tuning": record.get("tuning")}
        if not folder.is_dir():
            continue
        cell_rows, cell_histories, values[cell.name], cell_analyses = _rows_of_cell(folder, cell, set(cell.heads),
                                                                                    set(cell.seeds))
        num_labels[cell.name] = next((row["num_labels"] for row in cell_rows), None)
        analyses += cell_analyses
        rows += cell_rows
        histories += cell_histories
    return {"grid": grid or {}, "rows": rows, "histories": histories,
            **grid_comparisons(cells, values, num_labels=num_labels), "per_label": _per_label(analyses),
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
    """Write ``results.csv`` (the rows), ``comparisons.csv`` (the paired tests) and ``results.json`` (everything), each atomically."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.csv", _csv_text(results["rows"]))
    atomic_write_text(out_dir / "comparisons.csv", comparisons_csv(results))
    atomic_write_json(out_dir / "results.json", results)


def read_results(out_dir: str | Path) -> dict:
    """``DIR/results.json`` of an experiment."""
    path = Path(out_dir) / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run 'workbench experiment --grid GRID.toml --out {out_dir}' first.")
    return read_json(path)


def _mean_std(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value) of the values that are not None; NaN for none."""
    values = np.asarray([value for value in values if value is not None], dtype=np.float64)
    if not len(values):
        return float("nan"), float("nan")
    return float(values.mean()), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _number(value) -> float:
    """``value`` as a float; None as NaN."""
    return float("nan") if value is None else float(value)


def _plus_minus(mean: float, std: float, digits: int) -> str | None:
    return None if np.isnan(mean) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _interval(low: float, high: float, digits: int = 3, sign: str = "") -> str | None:
    return None if np.isnan(low) or np.isnan(high) else f"[{low:{sign}.{digits}f}, {high:{sign}.{digits}f}]"


def results_frame(results: dict):
    """An experiment's results, one row per (cell, head), as a :class:`pandas.DataFrame`.

    Columns: ``cell``, ``head``, ``seeds`` (the number of seeds), ``map_at_100_mean`` and
    ``map_at_100_std`` (over seeds of each run's final value), ``map_at_100_low`` and
    ``map_at_100_high`` (the mean of the runs' 95 % bootstrap bounds), ``ceiling_map_at_100``,
    ``macro_ap_mean``, ``macro_ap_std``; a value that is missing is NaN.
    """
    import pandas as pd

    groups: dict = {}
    for row in results["rows"]:
        groups.setdefault((row["cell"], row["head"]), []).append(row)
    records = []
    for (cell, head), rows in groups.items():
        lows = [row["map_at_100_low"] for row in rows if row["map_at_100_low"] is not None]
        highs = [row["map_at_100_high"] for row in rows if row["map_at_100_high"] is not None]
        (mean, std), (macro, macro_std) = (_mean_std(row[key] for row in rows) for key in ("map_at_100", "macro_ap"))
        records.append({"cell": cell, "head": head, "seeds": len(rows), "map_at_100_mean": mean, "map_at_100_std": std,
                        "map_at_100_low": float(np.mean(lows)) if lows else float("nan"),
                        "map_at_100_high": float(np.mean(highs)) if highs else float("nan"),
                        "ceiling_map_at_100": _number(rows[0]["ceiling_map_at_100"]),
                        "macro_ap_mean": macro, "macro_ap_std": macro_std})
    columns = ["cell", "head", "seeds", "map_at_100_mean", "map_at_100_std", "map_at_100_low", "map_at_100_high",
               "ceiling_map_at_100", "macro_ap_mean", "macro_ap_std"]
    return pd.DataFrame.from_records(records, columns=columns)


def results_table(results: dict) -> str:
    """:func:`results_frame` as text (MAP@100 mean ± std over seeds, mean bootstrap interval, ceiling); then the comparisons.

    The comparisons (:func:`workbench.experiments.comparisons.comparisons_text`): one line per
    (setting, head, baseline) with its interval and method, p-value, Holm-adjusted p-value and
    verdict, then the pooled tests over k.
    """
    import pandas as pd

    frame = results_frame(results)
    shown = pd.DataFrame({
        "cell": frame["cell"], "head": frame["head"], "seeds": frame["seeds"],
        "MAP@100 (last 3 epochs)": [_plus_minus(m, s, 3) for m, s in zip(frame["map_at_100_mean"], frame["map_at_100_std"])],
        "95% interval (mean)": [_interval(lo, hi) for lo, hi in zip(frame["map_at_100_low"], frame["map_at_100_high"])],
        "ceiling": frame["ceiling_map_at_100"],
        "macro AP": [_plus_minus(m, s, 3) for m, s in zip(frame["macro_ap_mean"], frame["macro_ap_std"])],
    })
    text = [text_table(shown, digits=3)]
    if "comparisons" not in results and results.get("paired"):
        text.append("(paired tests of an older version: run 'workbench experiment' again to compute the comparisons)")
    text += [comparisons_text(results)] if results.get("comparisons") else []
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
        (:func:`workbench.evaluation.statistics.paired_difference`: ``method``, ``low``/``high``
        from 4 seeds on, ``p_value``, ``note``, ``verdict`` of this one test), or ``None``.
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
                                      [values[(second, seed)] for seed in seeds])}
    return {"runs": runs, "paired": paired}


def statistics_frame(statistics: dict):
    """:func:`comparison_statistics`' runs, one row per run, as a :class:`pandas.DataFrame`.

    Columns: ``head``, ``seed``, ``epochs``, ``map_at_100`` (the mean of the last 3 epochs),
    ``map_at_100_low`` and ``map_at_100_high`` (95 % bootstrap over validation images) and
    ``macro_ap``; a value that is missing (runs written before per-image values were kept) is NaN.
    """
    import pandas as pd

    records = [{"head": run["head"], "seed": run["seed"], "epochs": run["epochs"], "map_at_100": _number(run["map_at_100"]),
                "map_at_100_low": _number(run["low"]), "map_at_100_high": _number(run["high"]),
                "macro_ap": _number(run["macro_ap"])} for run in statistics["runs"]]
    return pd.DataFrame.from_records(records, columns=["head", "seed", "epochs", "map_at_100", "map_at_100_low",
                                                       "map_at_100_high", "macro_ap"])


def statistics_table(statistics: dict) -> str:
    """:func:`statistics_frame` as text, one line per run, then the paired test in words (its method named)."""
    import pandas as pd

    frame = statistics_frame(statistics)
    shown = pd.DataFrame({
        "head": frame["head"], "seed": frame["seed"], "epochs": frame["epochs"],
        "MAP@100 (last 3 epochs)": frame["map_at_100"],
        "95% interval over images": [_interval(lo, hi) for lo, hi in zip(frame["map_at_100_low"], frame["map_at_100_high"])],
        "macro AP": frame["macro_ap"],
    })
    text = [text_table(shown, digits=3)]
    test = statistics.get("paired")
    if test and test.get("difference") is not None:
        name = f"{test['first']} − {test['second']} = {test['difference']:+.3f}"
        pvalue = "—" if test["p_value"] is None else f"{test['p_value']:.3f}" if test["p_value"] >= 0.001 \
            else f"{test['p_value']:.1e}"
        verdict = {"better": f"{test['first']} better than {test['second']}",
                   "worse": f"{test['first']} worse than {test['second']}"}.get(test["verdict"], test["verdict"])
        if test.get("low") is not None:
            text.append(f"{name}, 95% interval [{test['low']:+.3f}, {test['high']:+.3f}] ({test['method']}: seeds and "
                        f"images as random factors) over {test['num_seeds']} seeds, p = {pvalue}: {verdict}")
        else:
            text.append(f"{name} ({test['note']}; sign test p = {pvalue}): {verdict}")
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
        ``{head: {"final_mean", "final_std", "num_seeds", "epochs_to_reference",
        "epochs_to_convergence", "converged"}}``.
        A run's final value is :func:`~workbench.evaluation.statistics.final_value` (the
        mean of its last ``min(3, epochs)`` epochs: one epoch is noisy); ``final_mean`` and
        ``final_std`` are their mean and sample standard deviation over seeds (0 for one
        seed). The reference is the reference head's mean curve at its last epoch.
        ``epochs_to_reference`` is the first epoch at which the head's seed-mean
        curve reaches the reference head's final seed-mean value (``None`` if it
        never does, or without the reference head). Curves are cut to the shortest
        run of the head; a run the stopping rule stopped keeps its last value after it (the
        model it ends with). ``epochs_to_convergence`` is the mean over the head's converged
        runs of the epoch of their best hold-out MAP@100 (the run stopped because it had not
        improved for ``patience`` epochs; ``None`` when no run did), ``converged`` how many
        runs converged.
    """
    curves = _curves(results, metric)
    means = {}
    summary = {}
    for head, runs in curves.items():
        length = min(len(values) for values in runs)
        matrix = np.array([values[:length] for values in runs], dtype=np.float64)
        means[head] = matrix.mean(axis=0)
        finals = np.array([np.nan if value is None else value for value in
                           (final_value(run["history"], metric) for run in results["runs"] if run["head"] == head)])
        converged = [(run.get("stopping") or {}).get("epochs_to_convergence") for run in results["runs"]
                     if run["head"] == head]
        converged = [epochs for epochs in converged if epochs is not None]
        summary[head] = {
            "final_mean": float(np.mean(finals)),
            "final_std": float(np.std(finals, ddof=1)) if len(finals) > 1 else 0.0,
            "num_seeds": len(runs),
            "epochs_to_reference": None,
            "epochs_to_convergence": float(np.mean(converged)) if converged else None,
            "converged": len(converged),
        }
    if reference_head in means and len(means[reference_head]):
        target = means[reference_head][-1]
        for head, mean in means.items():
            reached = np.flatnonzero(mean >= target - 1e-12)
            summary[head]["epochs_to_reference"] = int(reached[0]) + 1 if len(reached) else None
    return summary


def _curves(results: dict, metric: str) -> dict[str, list[list[float]]]:
    """Each head's runs' curves of ``metric``; a run the stopping rule stopped carries its last value to the head's longest."""
    curves: dict[str, list[list[float]]] = {}
    stopped: dict[str, list[bool]] = {}
    for run in results["runs"]:
        curves.setdefault(run["head"], []).append(
            [np.nan if record.get(metric) is None else float(record[metric]) for record in run["history"]])
        stopped.setdefault(run["head"], []).append((run.get("stopping") or {}).get("stopped_epoch") is not None)
    for head, runs in curves.items():
        longest = max(len(values) for values in runs)
        curves[head] = [values + values[-1:] * (longest - len(values)) if halted and values else values
                        for values, halted in zip(runs, stopped[head])]
    return curves


def comparison_frame(results: dict, *, metric: str = "map_at_100", reference_head: str = "sigmoid"):
    """:func:`summarize_comparison` as a :class:`pandas.DataFrame`, one row per head.

    Columns: ``head``, ``final_mean`` and ``final_std`` (the metric's final value, mean and
    sample standard deviation over seeds), ``seeds`` (their number) and
    ``epochs_to_reference`` (the first epoch the head's mean curve reaches the reference
    head's last value, a float; NaN when it never does or without the reference head),
    ``epochs_to_convergence`` (mean over the converged seeds of the epoch of the best hold-out
    MAP@100; NaN without a stopping rule or when no seed converged) and ``converged`` (how many
    seeds did).
    """
    import pandas as pd

    summary = summarize_comparison(results, metric=metric, reference_head=reference_head)
    records = [{"head": head, "final_mean": values["final_mean"], "final_std": values["final_std"],
                "seeds": values["num_seeds"], "epochs_to_reference": _number(values["epochs_to_reference"]),
                "epochs_to_convergence": _number(values["epochs_to_convergence"]), "converged": values["converged"]}
               for head, values in summary.items()]
    return pd.DataFrame.from_records(records, columns=["head", "final_mean", "final_std", "seeds", "epochs_to_reference",
                                                       "epochs_to_convergence", "converged"])


def comparison_table(results: dict, *, metric: str = "map_at_100", reference_head: str = "sigmoid") -> str:
    """:func:`comparison_frame` as text: final metric (mean ± std over seeds) and epochs to reach the reference head."""
    import pandas as pd

    frame = comparison_frame(results, metric=metric, reference_head=reference_head)
    name = metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP")
    target = f" ({_last_of_mean(results, reference_head, metric):.4f})" if reference_head in set(frame["head"]) else ""
    shown = pd.DataFrame({
        "head": frame["head"],
        f"final {name}, last 3 epochs (mean ± std)": [_plus_minus(m, s, 4) for m, s in zip(frame["final_mean"], frame["final_std"])],
        "seeds": frame["seeds"],
        f"epochs to reach {reference_head}'s last {name}{target}":
            pd.Series([None if np.isnan(epochs) else int(epochs) for epochs in frame["epochs_to_reference"]], dtype=object),
    })
    if any(run.get("stopping") for run in results["runs"]):  # runs with the stopping rule
        shown["epochs to convergence (converged seeds)"] = [
            f"{epochs:.1f} ({count}/{seeds})" if count else f"— (0/{seeds})"
            for epochs, count, seeds in zip(frame["epochs_to_convergence"], frame["converged"], frame["seeds"])]
    return text_table(shown)


def _last_of_mean(results: dict, head: str, metric: str) -> float:
    """The last epoch of ``head``'s mean curve over seeds (the reference of ``epochs_to_reference``)."""
    curves = _curves(results, metric).get(head, [])
    length = min(len(curve) for curve in curves)
    return float(np.mean([curve[length - 1] for curve in curves])) if length else float("nan")


def _equal_time_groups(results: dict) -> list[tuple[str | None, list[dict]]]:
    """The runs compared at equal time: a comparison's, or per setting of an experiment (an embedding cell with the
    embedding-free cell of the same data and training settings, or that cell alone)."""
    import json

    if "runs" in results:
        return [(None, list(results["runs"]))]
    runs_of: dict = {}
    for entry in results.get("histories", []):
        runs_of.setdefault(entry["cell"], []).append(entry)
    cells = {name: state.get("settings") or {} for name, state in results.get("cells", {}).items()}

    def key(settings):
        return json.dumps({"data": settings.get("data"), "train": settings.get("train")}, sort_keys=True, default=str)

    embedding_cells = [name for name, settings in cells.items() if settings.get("embedding") is not None]
    partners = {name: [other for other, settings in cells.items() if settings.get("embedding") is None
                       and key(settings) == key(cells[name])] for name in embedding_cells}
    paired = {other for names in partners.values() for other in names}
    groups = [(name, [run for cell in (name, *partners[name]) for run in runs_of.get(cell, [])]) for name in embedding_cells]
    groups += [(name, runs_of.get(name, [])) for name, settings in cells.items()
               if settings.get("embedding") is None and name not in paired]
    return [(name, runs) for name, runs in groups if runs]


def equal_time_frame(results: dict, *, metric: str = "map_at_100"):
    """Each head's validation ``metric`` at equal training time, as a :class:`pandas.DataFrame`.

    Heads are compared at the same training seconds: the smallest total among the heads
    compared together (a comparison's heads; in an experiment, every setting's: an embedding
    cell with the embedding-free cell of the same data and training settings). A head's total
    is the mean over its seeds of its runs' training seconds (the sum of their epochs'
    ``seconds``, evaluation not counted). A run's value at that time is the ``metric`` of its
    last epoch completed within it (the model it had then: a run that finished earlier keeps
    its last value), NaN when not even its first epoch was. Times are measured on the machine
    that trained, so compare heads trained on one machine.

    Parameters
    ----------
    results : dict
        A comparison's (``runs``: :func:`workbench.experiments.compare.compare`) or an
        experiment's (``histories`` and ``cells``: :func:`collect_results`).
    metric : str, default="map_at_100"

    Returns
    -------
    pandas.DataFrame
        One row per (setting, head): ``cell`` (the setting's embedding cell, or its only
        cell; ``None`` for a comparison), ``head``, ``seconds`` (the equal time),
        ``{metric}_mean`` and ``{metric}_std`` (over seeds with a value; std 0 for one),
        ``epochs`` (mean epochs completed within ``seconds``), ``seeds`` (runs with a value)
        and ``total_seconds`` (the head's own mean total).
    """
    import pandas as pd

    records = []
    for cell, runs in _equal_time_groups(results):
        by_head: dict = {}
        for run in runs:
            times = np.cumsum([float(record.get("seconds") or 0.0) for record in run["history"]])
            values = [record.get(metric) for record in run["history"]]
            by_head.setdefault(run["head"], []).append((times, values))
        totals = {head: float(np.mean([times[-1] if len(times) else 0.0 for times, _ in head_runs]))
                  for head, head_runs in by_head.items()}
        equal = min(totals.values())
        for head, head_runs in by_head.items():
            reached, epochs = [], []
            for times, values in head_runs:
                done = int(np.searchsorted(times, equal * (1 + 1e-9) + 1e-9, side="right"))  # epochs completed by then
                epochs.append(done)
                if done and values[done - 1] is not None:
                    reached.append(float(values[done - 1]))
            mean, std = _mean_std(reached)
            records.append({"cell": cell, "head": head, "seconds": equal, f"{metric}_mean": mean, f"{metric}_std": std,
                            "epochs": float(np.mean(epochs)), "seeds": len(reached), "total_seconds": totals[head]})
    return pd.DataFrame.from_records(records, columns=["cell", "head", "seconds", f"{metric}_mean", f"{metric}_std",
                                                       "epochs", "seeds", "total_seconds"])
