"""A published study and what it says: its data read back, its claims, the protocol it meets, the rerun's cost.

A **study** is an experiment folder as published (``docs/study/``): ``results.csv`` (one row per
run), ``comparisons.csv`` (one row per (setting, head, baseline): difference, interval, p-value,
Holm-adjusted p-value, verdict) and ``results.json`` (the grid, the comparisons with the seeds each
head won, the pooled tests over ``k``, provenance), read by :func:`load_study`. What it says:

- a **claim** (:func:`claims`) is one sentence per (label count, head, baseline, verdict): the
  ``k`` where ``comparisons.csv`` gives that verdict and the bound of their Holm-adjusted
  p-values ("pmi is better than shuffled at 100 labels for k = 4, 8, 16 (Holm-adjusted p ≤ 0.012).");
  "better" and "worse" appear only where the verdict column says so;
- a **pooled** claim (:func:`pooled_claims`) per (label count, head, baseline): the pooled test over
  ``k`` of ``results.json``, with how many seed pairs favoured the head;
- the paper's **+7 %** (:func:`paper_question`): pmi − sigmoid relative to sigmoid's MAP@100 at
  every ``k``, and the claims of those comparisons;
- the **protocol** (:func:`protocol_gaps`): at least :data:`PROTOCOL_SEEDS` seeds, the controls
  :data:`CONTROL_HEADS` trained, learning rates tuned, a stopping rule;
- the **rerun** (:func:`rerun_estimate`): the runs of a grid file and the time they take at the
  study's own pace.

A study published before per-image values were kept (only each run's final value) is compared
over seeds alone (:func:`seed_level_results`): each run's final value stands for its images, so
with fewer than :data:`~workbench.evaluation.statistics.MIN_INTERVAL_SEEDS` seeds there is no
interval, only the sign test over seeds. :mod:`workbench.experiments.report` writes the text.
Keras-free.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from workbench.experiments.comparisons import COMPARISON_COLUMNS, FOCUS_HEAD, REFERENCE_HEAD, grid_comparisons, p_relation
from workbench.experiments.results import read_results
from workbench.method.targets import K_HEADS

__all__ = ["PAPER_GAIN", "PROTOCOL_SEEDS", "CONTROL_HEADS", "SEEDS_ONLY", "published_study_folder", "load_study",
           "seed_level_results", "claims", "pooled_claims", "paper_question", "protocol_gaps", "rerun_estimate"]

#: Chollet (2016): the embedding head's MAP@100 over the sigmoid head's, relative.
PAPER_GAIN = 0.07
#: The protocol asks at least this many seeds (an interval needs 4; 5 is the grids' default).
PROTOCOL_SEEDS = 5
#: Heads that isolate co-occurrence: a study without them cannot say what the PMI structure adds.
CONTROL_HEADS = ("shuffled", "random-matched", "learned", "sigmoid-lowrank")
#: ``results.json``'s ``paired_on`` for a study compared over each run's final value (no per-image values).
SEEDS_ONLY = "seeds"
_PHRASES = {"better": "is better than", "worse": "is worse than", "no difference": "shows no difference from"}


# ---------------------------------------------------------------------------------------------- reading


def published_study_folder() -> Path:
    """``docs/study/`` of the repository this package runs from: the published study's data."""
    folder = Path(__file__).resolve().parents[2] / "docs" / "study"
    if not (folder / "results.json").is_file():
        raise FileNotFoundError(f"The published study is not at {folder}: it ships with the repository's docs, not with "
                                f"an installed package; clone the repository, or pass the folder of an experiment.")
    return folder


def load_study(folder) -> dict:
    """A published study: ``{"folder", "results" (results.json), "rows", "comparisons"}`` (the CSVs as DataFrames).

    ``comparisons.csv`` must list ``results.json``'s comparisons in its order (the same setting,
    heads and verdict): the CSV is the table of record for the verdicts, ``results.json`` adds
    the seeds each head won and the pooled tests.
    """
    import pandas as pd

    folder = Path(folder)
    for name in ("results.json", "results.csv", "comparisons.csv"):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; a published study holds results.json, results.csv and "
                                    f"comparisons.csv (docs/study/write_study.py --publish EXPERIMENT_DIR copies them).")
    results = read_results(folder)
    rows = pd.read_csv(folder / "results.csv")
    comparisons = pd.read_csv(folder / "comparisons.csv", keep_default_na=False, na_values=[""])
    _check_same(comparisons, results, folder)
    return {"folder": folder, "results": results, "rows": rows, "comparisons": comparisons}


def _check_same(comparisons, results: dict, folder: Path) -> None:
    entries = results.get("comparisons", [])
    keys = [(int(entry["num_labels"]), _dim(entry["dim"]), entry["head"], entry["baseline"], entry["verdict"])
            for entry in entries]
    shown = [(int(row.num_labels), _dim(row.dim), row.head, row.baseline, row.verdict) for row in comparisons.itertuples()]
    if keys != shown or list(comparisons.columns) != list(COMPARISON_COLUMNS):
        raise ValueError(f"{folder / 'comparisons.csv'} does not match {folder / 'results.json'}; publish both from one "
                         f"experiment (docs/study/write_study.py --publish EXPERIMENT_DIR).")


def _dim(value) -> int | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)




def seed_level_results(rows: list[dict], *, grid: dict, provenance: dict) -> dict:
    """An experiment's ``results.json`` rebuilt from its rows alone: comparisons over each run's final value.

    For a study published without per-image values (``results.csv`` only): every run's final
    MAP@100 stands for its validation images (one value per seed), so the paired tests are over
    seeds alone (:func:`~workbench.experiments.comparisons.grid_comparisons`: the sign test below
    4 seeds, a t interval over seeds from 4 on), Holm-adjusted across the grid as usual.

    Parameters
    ----------
    rows : list of dict
        ``results.csv``'s rows (``cell``, ``head``, ``seed``, ``num_labels``, ``map_at_100``, …).
    grid : dict
        The grid the study ran (its tables, as :func:`~workbench.experiments.grid.parse_grid` takes them).
    provenance : dict
        Where, when and how long it ran (``seconds``: the wall-clock of the training).

    Returns
    -------
    dict
        ``grid``, ``rows``, ``comparisons``, ``pooled``, ``provenance``, ``paired_on`` = ``"seeds"``;
        empty ``histories``, ``per_label`` and ``cells`` (not kept).
    """
    from workbench.experiments.grid import expand_cells, parse_grid

    cells = expand_cells(parse_grid(grid))
    names = {cell.name for cell in cells}
    values, num_labels = {}, {}
    for row in rows:
        if row["cell"] not in names:
            raise ValueError(f"Row of cell {row['cell']!r} is not a cell of the grid ({', '.join(sorted(names))}); "
                             f"give the grid the study ran.")
        values.setdefault(row["cell"], {})[(row["head"], int(row["seed"]))] = np.array([float(row["map_at_100"])])
        num_labels[row["cell"]] = int(row["num_labels"])
    return {"grid": grid, "rows": rows, "histories": [], **grid_comparisons(cells, values, num_labels=num_labels),
            "per_label": [], "cells": {}, "provenance": provenance, "paired_on": SEEDS_ONLY}


# ---------------------------------------------------------------------------------------------- words


def _list(values) -> str:
    return ", ".join(str(value) for value in values)


def _and(values) -> str:
    values = [str(value) for value in values]
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _percent(value: float) -> str:
    return f"{100 * value:+.0f} %".replace("-", "−")


def claims(comparisons) -> list[dict]:
    """One claim per (label count, head, baseline, verdict) of a comparisons table, in the table's order.

    Parameters
    ----------
    comparisons : pandas.DataFrame
        ``comparisons.csv`` (:data:`~workbench.experiments.comparisons.COMPARISON_COLUMNS`).

    Returns
    -------
    list of dict
        ``num_labels``, ``head``, ``baseline``, ``verdict``, ``dims`` (the ``k`` with that verdict;
        empty for the embedding-free setting), ``p_adjusted`` (their Holm-adjusted p-values) and
        ``text``: "pmi is better than random at 100 labels for k = 4, 8 (Holm-adjusted p ≤ 0.012)."
        (the largest adjusted p of a "better" or "worse" claim, the smallest of a "no difference"
        one, "=" when they are all equal).
    """
    groups: dict = {}
    for row in comparisons.itertuples():  # per (label count, head, baseline) in the table's order, then per verdict
        pair = groups.setdefault((int(row.num_labels), row.head, row.baseline), {})
        pair.setdefault(row.verdict, []).append((_dim(row.dim), float(row.p_adjusted)))
    ordered = [(*key, verdict, by_verdict[verdict]) for key, by_verdict in groups.items() for verdict in _PHRASES
               if verdict in by_verdict]
    found = []
    for num_labels, head, baseline, verdict, members in ordered:
        dims = [dim for dim, _ in members if dim is not None]
        values = [value for _, value in members]
        bound = max(values) if verdict != "no difference" else min(values)
        sign = "=" if len(set(values)) == 1 else "≤" if verdict != "no difference" else "≥"
        where = f" for k = {_list(dims)}" if dims else ""
        found.append({"num_labels": num_labels, "head": head, "baseline": baseline, "verdict": verdict, "dims": dims,
                      "p_adjusted": values,
                      "text": f"{head} {_PHRASES[verdict]} {baseline} at {num_labels} labels{where} "
                              f"(Holm-adjusted p {p_relation(sign, bound)})."})
    return found


def pooled_claims(results: dict) -> list[dict]:
    """One sentence per pooled test of ``results.json`` (:func:`~workbench.experiments.comparisons.grid_comparisons`).

    Returns
    -------
    list of dict
        ``num_labels``, ``head``, ``baseline``, ``verdict``, ``dims``, ``p_adjusted`` and ``text``:
        "Pooled over k = 4, 8 at 100 labels, pmi is better than random (Holm-adjusted p = 0.004 across
        the 8 pooled tests; 17 of 18 seed pairs favour pmi)."
    """
    pooled = results.get("pooled", [])
    found = []
    for entry in pooled:
        found.append({"num_labels": entry["num_labels"], "head": entry["head"], "baseline": entry["baseline"],
                      "verdict": entry["verdict"], "dims": list(entry["dims"]), "p_adjusted": entry["p_adjusted"],
                      "text": f"Pooled over k = {_list(entry['dims'])} at {entry['num_labels']} labels, {entry['head']} "
                              f"{_PHRASES[entry['verdict']]} {entry['baseline']} (Holm-adjusted p "
                              f"{p_relation('=', entry['p_adjusted'])} across the {len(pooled)} pooled tests; "
                              f"{entry['seed_pairs_won']} of {entry['seed_pairs']} seed pairs favour {entry['head']})."})
    return found


def _means(rows, num_labels: int, head: str) -> dict:
    """``{k or None: mean final MAP@100 over seeds}`` of ``head`` at ``num_labels`` (None: a head without k)."""
    mine = rows[(rows["num_labels"] == num_labels) & (rows["head"] == head)]
    if head in K_HEADS:
        return {int(dim): float(group["map_at_100"].mean()) for dim, group in mine.groupby("dim")}
    return {None: float(mine["map_at_100"].mean())} if len(mine) else {}


def paper_question(study: dict, *, head: str = FOCUS_HEAD, baseline: str = REFERENCE_HEAD) -> list[str]:
    """The paper's +7 % asked of the study: per label count, ``head`` − ``baseline`` relative to ``baseline``, and the verdicts.

    One sentence per label count with both heads (none without them): the relative difference at
    every ``k`` (the comparisons' difference over ``baseline``'s mean MAP@100), where the 95 %
    interval stands against +7 % when there is one, then the claims of those comparisons.
    """
    rows, comparisons = study["rows"], study["comparisons"]
    sentences = []
    for num_labels in sorted(rows["num_labels"].unique()):
        num_labels = int(num_labels)
        reference = _means(rows, num_labels, baseline).get(None)
        mine = comparisons[(comparisons["num_labels"] == num_labels) & (comparisons["head"] == head)
                           & (comparisons["baseline"] == baseline)]
        if reference is None or not len(mine) or reference <= 0:
            continue
        parts = []
        for row in mine.itertuples():
            text = f"{_percent(row.difference / reference)} at k = {_dim(row.dim)}"
            if not math.isnan(row.low):
                low, high = row.low / reference, row.high / reference
                where = "holds" if low <= PAPER_GAIN <= high else "lies above" if low > PAPER_GAIN else "lies below"
                text += f" (95 % interval [{_percent(low)}, {_percent(high)}], which {where} {_percent(PAPER_GAIN)})"
            parts.append(text)
        verdicts = " ".join(claim["text"] for claim in claims(mine))
        sentences.append(f"At {num_labels} labels {head} − {baseline} is {_list(parts)} of {baseline}'s MAP@100 "
                         f"({reference:.3f}). {verdicts}")
    return sentences


# ---------------------------------------------------------------------------------------------- protocol


def _seeds(rows) -> int:
    """The fewest seeds of any (cell, head)."""
    return int(rows.groupby(["cell", "head"])["seed"].nunique().min()) if len(rows) else 0


def _heads(rows) -> list[str]:
    return list(dict.fromkeys(rows["head"]))


def protocol_gaps(study: dict) -> list[str]:
    """How the study misses the protocol, one phrase each (empty: it meets it).

    The protocol: at least :data:`PROTOCOL_SEEDS` seeds per head and cell, every control of
    :data:`CONTROL_HEADS` trained, learning rates tuned (the grid's ``tune_lr``), a stopping
    rule (``epochs_to_convergence`` known for the runs).
    """
    rows, grid = study["rows"], study["results"].get("grid", {})
    train = grid.get("train", {})
    gaps = []
    seeds = _seeds(rows)
    if seeds < PROTOCOL_SEEDS:
        gaps.append(f"{seeds} seeds (the protocol asks at least {PROTOCOL_SEEDS})")
    missing = [head for head in CONTROL_HEADS if head not in set(rows["head"])]
    if missing:
        gaps.append(f"no control{'s' if len(missing) > 1 else ''} ({_list(missing)} not trained)")
    if not train.get("tune_lr"):
        rates = rows.groupby("head")["learning_rate"].first()
        shown = _list(f"{head} {rate:g}" for head, rate in rates.items() if not math.isnan(rate))
        gaps.append(f"learning rates not tuned (`tune_lr` off; {shown})")
    converged = rows["epochs_to_convergence"] if "epochs_to_convergence" in rows else None
    if not train.get("patience") or converged is None or converged.isna().all():
        epochs = sorted(int(value) for value in rows["epochs"].unique())
        gaps.append(f"a fixed {_list(epochs)} epochs without a stopping rule (no run's convergence is known)")
    return gaps


def rerun_estimate(grid_path, study: dict) -> dict:
    """What the grid file trains and how long it takes at the study's pace.

    The pace is the study's wall-clock seconds (``provenance["seconds"]``) per run and epoch
    (its rows' epochs). The rerun's runs are every head and seed of every cell; with
    ``tune_lr`` every head of every cell first tries at least
    ``len(TUNING_FACTORS)`` rates (one run each; more where the best rate is on the edge).
    ``hours_cap``: every run trained to the grid's ``epochs`` (a tuning run to its ``tuning_epochs``
    where set); ``hours_study_epochs``: every run stopped after the study's own epochs (a tuning run
    after no more than its cap).

    Returns
    -------
    dict
        ``grid`` (read), ``cells``, ``runs``, ``tuning_runs``, ``factors`` (rates each head tries first),
        ``epochs`` (the cap), ``tuning_epochs`` (a tuning run's cap), ``study_runs``,
        ``study_epochs``, ``study_seconds``, ``seconds_per_epoch``, ``seconds_cap``,
        ``seconds_study_epochs``.
    """
    from workbench.experiments.experiment import TUNING_FACTORS
    from workbench.experiments.grid import expand_cells, read_grid

    grid = read_grid(grid_path)
    cells = expand_cells(grid)
    runs = sum(len(cell.heads) * len(cell.seeds) for cell in cells)
    tuning = sum(len(cell.heads) * len(TUNING_FACTORS) for cell in cells) if grid["train"]["tune_lr"] else 0
    rows = study["rows"]
    seconds = study["results"].get("provenance", {}).get("seconds")
    study_epochs = int(rows["epochs"].max())
    run_epochs = float(rows["epochs"].sum())
    pace = seconds / run_epochs if seconds and run_epochs else float("nan")
    cap = grid["train"]["epochs"]
    cap = max(cap) if isinstance(cap, list) else cap
    tuning_cap = grid["train"].get("tuning_epochs") or cap
    return {"grid": grid, "cells": len(cells), "runs": runs, "tuning_runs": tuning, "factors": len(TUNING_FACTORS),
            "epochs": cap, "tuning_epochs": tuning_cap, "study_runs": len(rows), "study_epochs": study_epochs,
            "study_seconds": seconds, "seconds_per_epoch": pace, "seconds_cap": (runs * cap + tuning * tuning_cap) * pace,
            "seconds_study_epochs": (runs * study_epochs + tuning * min(study_epochs, tuning_cap)) * pace}
