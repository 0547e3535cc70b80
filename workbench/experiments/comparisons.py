"""Every comparison of heads in a grid: which pairs, their paired tests, Holm across the grid, pooled over k.

A **setting** is one embedding cell (one data set, training setting and ``k``) together with
the cell of embedding-free heads of the same data and training setting (identity and
sigmoid, trained once for every ``k``); that cell alone is a setting as well (``dim``
empty). In every setting :func:`comparison_pairs` picks the pairs (head − baseline):

- :data:`FOCUS_HEAD` (pmi) against every other head of the setting;
- every other head against :data:`REFERENCE_HEAD` (sigmoid, the usual classifier).

A pair whose two heads both live in the embedding-free cell is tested once, in that cell's
own setting. Head names are not listed anywhere else, so a new head is compared as soon as a
grid trains it.

Each pair is tested over the seeds both heads finished, paired by seed and validation
image (:func:`~workbench.evaluation.statistics.paired_difference`: the ``crossed-t``
interval and its p-value from 4 seeds on, the sign test below). The p-values of all
comparisons of the grid are adjusted together by Holm's procedure; the **verdict** is
``better`` or ``worse`` only when the adjusted p-value is below 0.05, else ``no difference``.

The **pooled test** answers the overall direction per label count: for each (head, baseline)
tested at several ``k`` of one setting group (every axis but ``k`` equal), each seed's
per-image difference averaged over those ``k`` is tested the same way (so the runs shared
across ``k``, such as sigmoid's, count once per seed); its p-values get their own Holm
adjustment.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np

from workbench.evaluation.statistics import ALPHA, MIN_INTERVAL_SEEDS, holm_adjust, paired_difference, verdict

__all__ = ["COMPARISON_COLUMNS", "FOCUS_HEAD", "REFERENCE_HEAD", "comparison_pairs", "grid_comparisons",
           "comparisons_frame", "comparisons_csv", "comparisons_text"]

#: Columns of ``comparisons.csv``, in order.
COMPARISON_COLUMNS = ("num_labels", "dim", "head", "baseline", "seeds", "difference", "low", "high", "p_value",
                      "p_adjusted", "verdict")
#: The head compared with every other head of its setting.
FOCUS_HEAD = "pmi"
#: The baseline every other head is compared with.
REFERENCE_HEAD = "sigmoid"


def comparison_pairs(heads) -> list[tuple[str, str]]:
    """The (head, baseline) pairs among ``heads``: pmi against every other head, then every other head against sigmoid.

    Parameters
    ----------
    heads : sequence of str
        The heads of one setting, in the grid's order.

    Returns
    -------
    list of (str, str)
        Each pair once, in the order of ``heads``.
    """
    heads = list(dict.fromkeys(heads))
    pairs = [(FOCUS_HEAD, head) for head in heads if FOCUS_HEAD in heads and head != FOCUS_HEAD]
    pairs += [(head, REFERENCE_HEAD) for head in heads
              if REFERENCE_HEAD in heads and head not in (FOCUS_HEAD, REFERENCE_HEAD)]
    return pairs


def _setting_key(cell) -> str:
    """What an embedding cell shares with its embedding-free partner: the data and training settings."""
    return json.dumps({"data": cell.data, "train": cell.train}, sort_keys=True, default=str)


def _group_key(cell) -> str:
    """Every setting of a cell but ``k``: the cells a pooled test averages over."""
    embedding = {key: value for key, value in (cell.embedding or {}).items() if key != "dim"}
    return json.dumps({"data": cell.data, "train": cell.train, "embedding": embedding}, sort_keys=True, default=str)


def _test(head_values: dict, baseline_values: dict) -> tuple[list[int], dict] | None:
    """The paired test of two heads' per-image values ``{seed: (N,) array}`` over their common seeds, or None."""
    seeds = sorted(set(head_values) & set(baseline_values))
    if not seeds or len({len(head_values[seed]) for seed in seeds} | {len(baseline_values[seed]) for seed in seeds}) != 1:
        return None
    return seeds, paired_difference([head_values[seed] for seed in seeds], [baseline_values[seed] for seed in seeds])


def _adjust(entries: list[dict]) -> None:
    """Holm across ``entries`` (in place): ``p_adjusted`` and the ``verdict`` it gives."""
    for entry, adjusted in zip(entries, holm_adjust([entry["p_value"] for entry in entries])):
        entry["p_adjusted"] = adjusted
        entry["verdict"] = verdict(entry["difference"], adjusted, alpha=ALPHA)


def grid_comparisons(cells, values: dict, *, num_labels: dict | None = None) -> dict:
    """Every comparison of a grid and the pooled tests over ``k``.

    Parameters
    ----------
    cells : sequence of Cell
        The grid's cells (:func:`workbench.experiments.grid.expand_cells`), in order.
    values : dict
        ``{cell name: {(head, seed): ndarray of shape (N,)}}``: each finished run's final
        per-image values (:func:`~workbench.evaluation.statistics.final_image_values`).
    num_labels : dict, optional
        ``{cell name: number of labels}`` (from the cells' results).

    Returns
    -------
    dict
        ``comparisons``: one entry per (setting, head, baseline) with ``cell`` and
        ``baseline_cell`` (where the runs are), ``num_labels``, ``dim``, ``head``,
        ``baseline``, ``seeds`` (the common seeds), :func:`paired_difference`'s keys,
        ``p_adjusted`` (Holm across the grid) and ``verdict``; ``pooled``: one entry per
        (setting group, head, baseline) tested at two or more ``k``, with ``dims``,
        ``cells``, ``seed_pairs`` and ``seed_pairs_won`` (over every ``k`` and seed), the
        test of the difference averaged over ``k``, and its own Holm adjustment.
    """
    num_labels = num_labels or {}
    by_setting: dict = {}
    for cell in cells:
        if cell.embedding is None:
            by_setting.setdefault(_setting_key(cell), cell)
    comparisons, sources = [], []
    for cell in cells:
        own = values.get(cell.name, {})
        partner = by_setting.get(_setting_key(cell)) if cell.embedding is not None else None
        runs = {cell.name: own, **({partner.name: values.get(partner.name, {})} if partner else {})}
        where = {head: cell.name for head in cell.heads}
        if partner is not None:
            where.update({head: partner.name for head in partner.heads if head not in where})
        heads = [head for head in cell.heads] + [head for head in (partner.heads if partner else ()) if head not in cell.heads]
        for head, baseline in comparison_pairs(heads):
            if partner is not None and where[head] == where[baseline] == partner.name:
                continue  # both embedding-free: tested once, in their own cell
            head_values = {seed: array for (name, seed), array in runs[where[head]].items() if name == head}
            baseline_values = {seed: array for (name, seed), array in runs[where[baseline]].items() if name == baseline}
            tested = _test(head_values, baseline_values)
            if tested is None:
                continue
            seeds, test = tested
            comparisons.append({"cell": cell.name, "baseline_cell": where[baseline],
                                "num_labels": num_labels.get(cell.name), "dim": (cell.embedding or {}).get("dim"),
                                "head": head, "baseline": baseline, "seeds": seeds, **test})
            sources.append((cell, head_values, baseline_values))
    _adjust(comparisons)
    return {"comparisons": comparisons, "pooled": _pooled(comparisons, sources)}


def _pooled(comparisons: list[dict], sources: list) -> list[dict]:
    """The pooled tests over ``k`` (see the module docstring), Holm-adjusted among themselves."""
    groups: dict = {}
    for entry, (cell, head_values, baseline_values) in zip(comparisons, sources):
        if cell.embedding is not None:
            groups.setdefault((_group_key(cell), entry["head"], entry["baseline"]), []).append(
                (entry, head_values, baseline_values))
    pooled = []
    for (_, head, baseline), members in groups.items():
        if len(members) < 2:
            continue
        seeds = sorted(set.intersection(*(set(entry["seeds"]) for entry, _, _ in members)))
        lengths = {len(values[seed]) for _, first, second in members for values in (first, second) for seed in seeds}
        if not seeds or len(lengths) != 1:
            continue
        averaged = [np.mean([values[seed] for _, values, _ in members], axis=0) for seed in seeds]
        averaged_baseline = [np.mean([values[seed] for _, _, values in members], axis=0) for seed in seeds]
        test = paired_difference(averaged, averaged_baseline)
        differences = [value for entry, _, _ in members for value in entry["seed_differences"]]
        pooled.append({"num_labels": members[0][0]["num_labels"], "head": head, "baseline": baseline,
                       "dims": [entry["dim"] for entry, _, _ in members], "cells": [entry["cell"] for entry, _, _ in members],
                       "seeds": seeds, "seed_pairs": len(differences),
                       "seed_pairs_won": int(sum(value > 0 for value in differences)), **test})
    _adjust(pooled)
    return pooled


def comparisons_frame(results: dict):
    """``results.json``'s comparisons as :class:`pandas.DataFrame`, one row per (setting, head, baseline).

    Columns :data:`COMPARISON_COLUMNS`: numbers as floats (``seeds``, their number, an
    integer), NaN where undefined: ``low``/``high`` without an interval (fewer than 4
    seeds), ``dim`` for the embedding-free cell.
    """
    import pandas as pd

    if "comparisons" not in results:
        raise ValueError("These results were written before comparisons were kept; run 'workbench experiment' on the "
                         "same grid and folder again (finished cells are skipped) to compute them.")
    records = [{"num_labels": _number(entry["num_labels"]), "dim": _number(entry["dim"]), "head": entry["head"],
                "baseline": entry["baseline"], "seeds": len(entry["seeds"]), "difference": _number(entry["difference"]),
                "low": _number(entry["low"]), "high": _number(entry["high"]), "p_value": _number(entry["p_value"]),
                "p_adjusted": _number(entry["p_adjusted"]), "verdict": entry["verdict"]}
               for entry in results["comparisons"]]
    return pd.DataFrame.from_records(records, columns=list(COMPARISON_COLUMNS))


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def comparisons_csv(results: dict) -> str:
    """``comparisons.csv``: the header :data:`COMPARISON_COLUMNS`, then one line per comparison (empty where undefined)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COMPARISON_COLUMNS)
    for entry in results.get("comparisons", []):
        writer.writerow(["" if value is None else value for value in (
            entry["num_labels"], entry["dim"], entry["head"], entry["baseline"], len(entry["seeds"]), entry["difference"],
            entry["low"], entry["high"], entry["p_value"], entry["p_adjusted"], entry["verdict"])])
    return buffer.getvalue()


def format_p(value) -> str:
    """A p-value as printed: three decimals, ``1.2e-05`` below 0.001, ``< 1e-300`` where it underflowed to 0."""
    if value is None or value != value:
        return "—"
    if value == 0:
        return "< 1e-300"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def p_relation(sign: str, value) -> str:
    """``"= 0.003"``, ``"≤ 1.2e-05"``; ``"< 1e-300"`` for a p-value that underflowed to 0, whatever ``sign``."""
    text = format_p(value)
    return text if text.startswith("<") else f"{sign} {text}"


def _describe(entry: dict) -> str:
    """``head − baseline = +0.031 [+0.010, +0.052] (crossed-t over 5 seeds × 1200 images), p = …, Holm p = …``."""
    if entry["difference"] is None:
        return f"{entry['head']} − {entry['baseline']}: {entry['note']}"
    text = f"{entry['head']} − {entry['baseline']} = {entry['difference']:+.3f}"
    if entry["low"] is not None:
        text += (f" [{entry['low']:+.3f}, {entry['high']:+.3f}] ({entry['method']} over {entry['num_seeds']} seeds × "
                 f"{entry['num_images']} images), p = {format_p(entry['p_value'])}")
    else:
        text += f" ({entry['note']}; sign test p = {format_p(entry['p_value'])})"
    return text + f", Holm p = {format_p(entry['p_adjusted'])}: {entry['verdict']}"


def comparisons_text(results: dict) -> str:
    """Every comparison and pooled test in words, one line each (empty without comparisons)."""
    comparisons, pooled = results.get("comparisons", []), results.get("pooled", [])
    if not comparisons:
        return ""
    lines = [f"Comparisons (head − baseline, MAP@100; 95 % interval from {MIN_INTERVAL_SEEDS} seeds on; verdict by the "
             f"Holm-adjusted p across the grid's {len(comparisons)} comparisons < {ALPHA:g}):"]
    for entry in comparisons:
        where = f"labels {entry['num_labels']}, " if entry["num_labels"] is not None else ""
        where += f"k {entry['dim']}" if entry["dim"] is not None else "no embedding"
        lines.append(f"  {where}: {_describe(entry)}")
    if pooled:
        lines.append(f"Pooled over k (the difference averaged over k per seed, the same test; Holm across the "
                     f"{len(pooled)} pooled tests):")
        for entry in pooled:
            where = f"labels {entry['num_labels']}, " if entry["num_labels"] is not None else ""
            dims = ", ".join(str(dim) for dim in entry["dims"])
            lines.append(f"  {where}k = {dims}: {_describe(entry)}; {entry['seed_pairs_won']} of {entry['seed_pairs']} "
                         f"seed pairs favour {entry['head']}")
    return "\n".join(lines)
