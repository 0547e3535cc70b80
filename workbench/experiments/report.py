"""The study's text from its data: ``docs/study.md`` and the README's summary, every number and claim from the results.

:func:`study_markdown` writes the note of a study (:func:`workbench.experiments.study.load_study`)
and :func:`readme_summary` the README's block; nothing in either is written by hand. The note: a
title that says whether the study meets the protocol (one that misses it is *the earlier study*,
its per-cell claims withdrawn until the rerun), how it was run (the grid, the rates used, the
statistics and what the seeds allow, the time), each head's MAP@100 per ``k``, every comparison,
the claims (:func:`~workbench.experiments.study.claims`), the pooled tests, the paper's +7 %,
numbers described but not tested (ceilings, companion errors), what it does not say and, for the
earlier study, the rerun with its command and time (:func:`~workbench.experiments.study.rerun_estimate`).
``docs/study/write_study.py`` writes both files; ``tests/test_study.py`` checks them. Keras-free.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from workbench.evaluation.statistics import ALPHA, LAST_EPOCHS, MIN_INTERVAL_SEEDS, sign_test
from workbench.experiments.comparisons import FOCUS_HEAD, format_p
from workbench.experiments.study import (
    CONTROL_HEADS,
    PAPER_GAIN,
    PROTOCOL_SEEDS,
    SEEDS_ONLY,
    _and,
    _dim,
    _heads,
    _list,
    _percent,
    _seeds,
    claims,
    paper_question,
    pooled_claims,
    protocol_gaps,
    rerun_estimate,
)
from workbench.method.targets import K_HEADS

__all__ = ["README_BEGIN", "README_END", "study_markdown", "readme_summary", "replace_block"]

#: The lines around the README's study summary (:func:`replace_block` rewrites what is between).
README_BEGIN = "<!-- study summary: written by docs/study/write_study.py from docs/study/ (edit the data, not this block) -->"
README_END = "<!-- end of study summary -->"


def _minutes(seconds: float) -> str:
    minutes = int(round(seconds / 60))
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def _signed(value: float, digits: int = 3) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


# ---------------------------------------------------------------------------------------------- tables


def _mean_sd(values) -> str:
    values = np.asarray([value for value in values if not math.isnan(value)], dtype=np.float64)
    if not len(values):
        return "—"
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.3f}"


def _markdown_table(header: list[str], lines: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(line) + " |" for line in lines]


def _k_label(rows, num_labels: int, dim: int) -> str:
    achieved = rows[(rows["num_labels"] == num_labels) & (rows["dim"] == dim) & rows["head"].isin(K_HEADS)]["dim_achieved"]
    achieved = sorted({int(value) for value in achieved if not math.isnan(value)})
    return f"{dim} ({_list(achieved)})" if achieved and achieved != [dim] else str(dim)


def _value_table(rows, num_labels: int, column: str, *, digits: int = 3, per_seed: bool = True) -> list[str]:
    """``column`` per k (rows) and k-dependent head (columns) at ``num_labels``: mean ± sd over seeds, or the value."""
    mine = rows[(rows["num_labels"] == num_labels) & rows["head"].isin(K_HEADS)]
    mine = mine[~mine[column].isna()] if column in mine else mine.iloc[0:0]
    heads = list(dict.fromkeys(mine["head"]))
    if not heads:
        return []
    lines = []
    for dim in sorted(int(value) for value in mine["dim"].unique()):
        line = [_k_label(rows, num_labels, dim)]
        for head in heads:
            values = mine[(mine["head"] == head) & (mine["dim"] == dim)][column]
            line.append("—" if not len(values) else _mean_sd(values) if per_seed else f"{values.iloc[0]:.{digits}f}")
        lines.append(line)
    return _markdown_table(["k", *heads], lines)


def _flat_heads(rows, num_labels: int, column: str = "map_at_100") -> str:
    mine = rows[(rows["num_labels"] == num_labels) & ~rows["head"].isin(K_HEADS)]
    parts = []
    for head, group in mine.groupby("head", sort=False):
        dims = sorted({int(value) for value in group["dim"] if not math.isnan(value)})
        size = f" (k = C = {dims[0]})" if dims else ""
        parts.append(f"{head}{size} {_mean_sd(group[column])} over {group['seed'].nunique()} seeds")
    return "; ".join(parts)


def _comparison_table(study: dict, num_labels: int) -> list[str]:
    comparisons = study["comparisons"]
    entries = study["results"]["comparisons"]
    lines = []
    for row, entry in zip(comparisons.itertuples(), entries):
        if int(row.num_labels) != num_labels:
            continue
        difference = _signed(row.difference)
        if not math.isnan(row.low):
            difference += f" [{_signed(row.low)}, {_signed(row.high)}]"
        method = entry.get("method") or "—"
        seeds = f"{entry.get('wins', 0)} of {int(row.seeds)}"
        lines.append([str(_dim(row.dim) or "—"), f"{row.head} − {row.baseline}", difference, seeds,
                      f"{format_p(row.p_value)} ({method})", format_p(row.p_adjusted), row.verdict])
    return _markdown_table(["k", "head − baseline", "difference" + (" [95 % interval]" if not
                                                                     comparisons["low"].isna().all() else ""),
                            "seeds won", "p (test)", "Holm-adjusted p", "verdict"], lines)


# ---------------------------------------------------------------------------------------------- the note


def _listed(value) -> list:
    return value if isinstance(value, list) else [value]


def _values(value) -> str:
    return _and(value) if isinstance(value, list) else f"{value:,}" if isinstance(value, int) else str(value)


def _grid_lines(grid: dict) -> list[list[str]]:
    """A grid's settings in words, one ``[what, how]`` per table line (data, embedding, heads, training)."""
    data, embedding, train = grid.get("data", {}), grid.get("embedding", {}), grid.get("train", {})
    validation = data.get("validation_fraction", 0.2)
    if data.get("path"):
        described = f"`{data['path']}`, {100 * validation:g} % held out for validation"
    else:
        images = data.get("images")
        held = f" ({int(round(images * validation)):,} images)" if isinstance(images, int) else ""
        described = (f"emoji scenes, {_values(images)} images of {_values(data.get('size'))}×{_values(data.get('size'))}, "
                     f"**{_values(data.get('labels'))} labels**; each true label missing with probability "
                     f"{_values(data.get('missing_rate'))}, a wrong label added with probability "
                     f"{_values(data.get('spurious_rate'))}; data seed {_values(data.get('seed'))}; {100 * validation:g} %"
                     f"{held} held out for validation, one split for every head and seed")
    rates = train.get("learning_rates") or {}
    stopping = (f"stopped when the hold-out's MAP@100 has not improved for {train['patience']} epochs (the rate "
                f"divided when flat for {train.get('lr_patience')}), the hold-out {100 * train.get('holdout_fraction', 0):g} % "
                f"of the training split" if train.get("patience") else "no stopping rule")
    return [
        ["data", described],
        ["embedding", f"PMI policy `{_values(embedding.get('pmi'))}`, diagonal `{_values(embedding.get('diagonal'))}`, "
                      f"negative eigenvalues `{_values(embedding.get('negative'))}`; **k ∈ {{{_list(_listed(embedding.get('dim')))}}}**"],
        ["heads", f"**{_values(train.get('heads'))}**"],
        ["seeds", _values(train.get("seeds"))],
        ["training", f"{'at most ' if train.get('patience') else ''}{_values(train.get('epochs'))} epochs, batch "
                     f"{_values(train.get('batch_size'))}, trunk width {_values(train.get('width'))} and depth "
                     f"{_values(train.get('depth'))}; {stopping}; learning rates "
                     + ("tuned per cell on a hold-out of the training split" if train.get("tune_lr") else "not tuned")
                     + (f" (tuning runs of at most {train['tuning_epochs']} epochs)"
                        if train.get("tune_lr") and train.get("tuning_epochs") else "")
                     + (f" (starting from {_list(f'{head} {rate:g}' for head, rate in rates.items())})" if rates else "")],
    ]


def _study_lines(study: dict) -> list[list[str]]:
    """The grid's lines with what the rows add: the k achieved, the rates used, the statistics, the time."""
    rows, results = study["rows"], study["results"]
    lines = _grid_lines(results.get("grid", {}))
    achieved = rows[rows["head"].isin(K_HEADS) & (rows["dim"] != rows["dim_achieved"])]
    achieved = sorted({(int(row.num_labels), int(row.dim), int(row.dim_achieved)) for row in achieved.itertuples()})
    if achieved:
        lines[1][1] += " (" + "; ".join(f"k = {dim} gives {got} at {labels} labels: its positive eigenvalues"
                                        for labels, dim, got in achieved) + ")"
    rates = {head: sorted({float(value) for value in group if not math.isnan(value)})
             for head, group in rows.groupby("head")["learning_rate"]}
    lines[4][1] += "; rates used: " + _list(f"{head} {'/'.join(f'{rate:g}' for rate in values)}"
                                            for head, values in rates.items() if values)
    lines.append(["statistics", _statistics_text(study)])
    time = _provenance_text(results)
    if time:
        lines.append(["time", time])
    return lines


def _provenance_text(results: dict) -> str:
    provenance = results.get("provenance", {})
    run = results.get("run") or {}
    parts, commits = [], []
    if run.get("seconds"):  # published with the experiment's record: its wall-clock time, every invocation summed
        invocations = run.get("invocations") or []
        began = [entry["began"] for entry in invocations if entry.get("began")]
        span = f", {began[0][:10]} to {began[-1][:10]}" if began and began[0][:10] != began[-1][:10] else \
            f", {began[0][:10]}" if began else ""
        parts.append(f"**{_minutes(run['seconds'])}** ({run['seconds'] / 3600:.2f} h) of wall-clock time over "
                     f"{len(invocations)} invocation{'s' if len(invocations) != 1 else ''} of `workbench experiment` "
                     f"(`experiment.json`){span}")
        commits = list(dict.fromkeys(entry["git_commit"][:7] for entry in invocations if entry.get("git_commit")))
        if commits:
            parts.append(f"commit{'s' if len(commits) > 1 else ''} {_list(f'`{commit}`' for commit in commits)}"
                         + (" (and earlier ones not recorded)" if any(not entry.get("git_commit") for entry in invocations)
                            else ""))
    elif provenance.get("seconds"):
        parts.append(f"{_minutes(provenance['seconds'])} ({provenance['seconds']:,.0f} s) of training"
                     + (f", {provenance['when']}" if provenance.get("when") else ""))
    if provenance.get("git_commit") and not commits:  # the invocations' commits say it where they were recorded
        parts.append(f"commit `{provenance['git_commit'][:7]}`")
    if provenance.get("machine"):
        parts.append(provenance["machine"])
    elif provenance.get("python"):
        parts.append(f"{provenance.get('cpu_count')} cores, {provenance.get('memory_gib')} GiB of memory, "
                     f"Python {provenance['python']}")
    if provenance.get("note"):
        parts.append(provenance["note"])
    return "; ".join(parts)


def _statistics_text(study: dict) -> str:
    results, rows = study["results"], study["rows"]
    seeds = _seeds(rows)
    count = len(study["comparisons"])
    seeds_only = results.get("paired_on") == SEEDS_ONLY
    text = (f"a run's value is the mean of its {_last(rows)}; every comparison pairs two heads by seed"
            + ("" if seeds_only else " and validation image")
            + f", its p-value adjusted by Holm's procedure across the grid's {count} comparisons; only an adjusted p "
              f"below {ALPHA:g} reads \"better\" or \"worse\".")
    if seeds_only:
        text += (" **From seeds alone**: only each run's final value was published (`results.csv`), not its per-image "
                 "values, so every comparison is over seeds alone.")
    if seeds < MIN_INTERVAL_SEEDS:
        smallest = sign_test(np.ones(seeds))
        adjusted = min(1.0, smallest * count)
        text += (f" **With {seeds} seeds there is no 95 % interval** (the workbench gives one from {MIN_INTERVAL_SEEDS} "
                 f"seeds on, where its coverage is measured), only the sign of the difference over seeds and its exact "
                 f"sign test, whose smallest two-sided p-value with {seeds} seeds is {format_p(smallest)}"
                 + (f": after Holm's adjustment no comparison can reach {ALPHA:g} (the smallest possible adjusted p is "
                    f"{format_p(adjusted)})." if adjusted >= ALPHA else "."))
    return text


def _figures(folder: Path, prefix: str, names) -> list[str]:
    captions = {"map_against_k.png": "Final MAP@100 against k (dots: seeds; dotted: decoding ceilings)",
                "curves.png": "MAP@100 against epochs and training seconds",
                "per_label_ap.png": "Per-label AP against training frequency",
                "errors.png": "The pmi head's most confident false positives"}
    return [f"![{captions[name]}]({prefix}/{name})\n" for name in names if (folder / name).is_file()]


def _title(gaps: list[str]) -> str:
    if gaps:
        return "The earlier study: its per-cell claims are withdrawn until the rerun"
    return "The study: when does the PMI structure help?"


def _headline(gaps: list[str]) -> str:
    if gaps:
        return "**[`docs/study.md`](docs/study.md) is the earlier study; its per-cell claims are withdrawn until the rerun.**"
    return "**[`docs/study.md`](docs/study.md) is the study run with the protocol.**"


def _overview(study: dict) -> str:
    rows, grid = study["rows"], study["results"].get("grid", {})
    labels = _and(sorted(int(value) for value in rows["num_labels"].unique()))
    dims = _list(sorted(int(value) for value in rows[rows["head"].isin(K_HEADS)]["dim"].unique()))
    source = "a data set on disk" if grid.get("data", {}).get("path") else "generated emoji scenes with label noise"
    return (f"One grid on {source}: {labels} labels, k ∈ {{{dims}}}, heads {_and(_heads(rows))}, {_seeds(rows)} seeds "
            f"({len(rows)} runs).")


def _status(study: dict, gaps: list[str]) -> str:
    rows = study["rows"]
    if not gaps:
        return (f"**Run with the protocol**: at least {PROTOCOL_SEEDS} seeds, the controls {_list(CONTROL_HEADS)}, "
                f"learning rates tuned, a stopping rule.")
    return (f"**This study was run before the current protocol** and misses it in {len(gaps)} "
            f"way{'s' if len(gaps) > 1 else ''}: {'; '.join(gaps)}. **Its per-cell claims are withdrawn until the rerun "
            f"with the protocol** (at least {PROTOCOL_SEEDS} seeds, the controls, tuned and converged heads); what "
            f"follows is what the current statistics say from what was published.")


def _rerun(estimate: dict, grid_name: str) -> list[str]:
    tuning = (f", after at least {estimate['tuning_runs']} tuning runs (each head of each cell tries {estimate['factors']} "
              f"or more learning rates, one run each)" if estimate["tuning_runs"] else "")
    return [
        f"It trains {estimate['runs']} runs in {estimate['cells']} cells{tuning}. At this study's pace "
        f"({estimate['study_runs']} runs of {estimate['study_epochs']} epochs in {_minutes(estimate['study_seconds'])}: "
        f"{estimate['seconds_per_epoch']:.1f} s per run and epoch on the same machine) that is about "
        f"**{_minutes(estimate['seconds_study_epochs'])}** if the runs stop after {estimate['study_epochs']} epochs as "
        f"these did, and at most **{_minutes(estimate['seconds_cap'])}** if every run trains to the cap of "
        f"{estimate['epochs']} epochs.", "",
        "```bash",
        f"workbench experiment --grid {grid_name} --out results/study --cores 2",
        ".venv/bin/python docs/study/write_study.py --publish results/study   # results into docs/study/, this note, README",
        ".venv/bin/python docs/study/make_figures.py results/study            # the figures",
        "```",
    ]


def _epochs_text(values) -> str:
    """Epochs to convergence of a head's runs: mean ± sd over the runs the rule stopped, and how many reached the cap."""
    values = np.asarray(values, dtype=np.float64)
    stopped = values[~np.isnan(values)]
    text = "—" if not len(stopped) else \
        f"{stopped.mean():.1f} ± {stopped.std(ddof=1) if len(stopped) > 1 else 0.0:.1f}"
    at_cap = int(np.isnan(values).sum())
    return text + (f" ({at_cap} of {len(values)} at the cap)" if at_cap else "")


def _epochs_table(rows, num_labels: int, cap) -> list[str]:
    """Epochs to convergence per k and head at ``num_labels`` (the heads without k on a line of their own)."""
    if "epochs_to_convergence" not in rows or rows["epochs_to_convergence"].isna().all():
        return []
    mine = rows[rows["num_labels"] == num_labels]
    k_rows = mine[mine["head"].isin(K_HEADS)]
    heads = list(dict.fromkeys(k_rows["head"]))
    lines = [[_k_label(rows, num_labels, dim)] + [_epochs_text(k_rows[(k_rows["head"] == head) & (k_rows["dim"] == dim)]
                                                               ["epochs_to_convergence"]) for head in heads]
             for dim in sorted(int(value) for value in k_rows["dim"].unique())]
    flat = [f"{head} {_epochs_text(group['epochs_to_convergence'])}"
            for head, group in mine[~mine["head"].isin(K_HEADS)].groupby("head", sort=False)]
    out = [f"Epochs to convergence (the epoch of the best hold-out MAP@100; mean ± sd over the runs the stopping rule "
           f"stopped, and the runs that reached the cap of {cap} epochs without it), {num_labels} labels:", ""]
    if heads:
        out += [*_markdown_table(["k", *heads], lines), ""]
    if flat:
        out += [f"Without k: {'; '.join(flat)}.", ""]
    return out


def _optional_table(rows, num_labels: int, column: str, title: str, *, per_seed: bool = True) -> list[str]:
    table = _value_table(rows, num_labels, column, per_seed=per_seed)
    return [title, "", *table, ""] if table else []


def study_markdown(study: dict, *, rerun_grid=None, prefix: str = "study") -> str:
    """``docs/study.md`` of a study (:func:`load_study`): every number and claim from its data.

    Parameters
    ----------
    study : dict
        From :func:`load_study`.
    rerun_grid : path, optional
        The grid file of the rerun (``docs/study/grid.toml``); described, with the command and
        :func:`rerun_estimate`, when the study misses the protocol.
    prefix : str, default="study"
        The study folder as the note links it (relative to the note).

    Returns
    -------
    str
        Markdown, ending in a newline.
    """
    rows, results, folder = study["rows"], study["results"], Path(study["folder"])
    gaps = protocol_gaps(study)
    label_counts = sorted(int(value) for value in rows["num_labels"].unique())
    out = [f"# {_title(gaps)}", "",
           f"*Written by [`{prefix}/write_study.py`]({prefix}/write_study.py) from [`{prefix}/results.csv`]"
           f"({prefix}/results.csv), [`{prefix}/comparisons.csv`]({prefix}/comparisons.csv) and "
           f"[`{prefix}/results.json`]({prefix}/results.json): every number and every claim below comes from them. "
           f"Do not edit it: change the data and run `.venv/bin/python docs/study/write_study.py`.*", "",
           _overview(study), "", _status(study, gaps), "",
           "## How it was run", "", *_markdown_table(["", ""], _study_lines(study)), "",
           "## Results", "", *_figures(folder, prefix, ["map_against_k.png"])]
    for num_labels in label_counts:
        flat = _flat_heads(rows, num_labels)
        out += [f"**{num_labels} labels**: final validation MAP@100 (mean ± standard deviation over seeds of each run's "
                f"mean of its {_last(rows)})", "", *_value_table(rows, num_labels, "map_at_100"), "",
                *([f"Without k: {flat}.", ""] if flat else [])]
        clean = _optional_table(rows, num_labels, "map_at_100_clean", f"MAP@100 on the clean labels, {num_labels} labels:")
        flat_clean = _flat_heads(rows, num_labels, "map_at_100_clean") if clean else ""
        out += clean + ([f"Without k: {flat_clean}.", ""] if flat_clean else [])
        out += _epochs_table(rows, num_labels, results.get("grid", {}).get("train", {}).get("epochs"))
    out += ["## Comparisons", "",
            "Each head against each baseline in every setting (pmi against every other head, every other head against "
            "sigmoid): the mean paired difference of MAP@100, the seeds where the head was higher, the test and its "
            "p-value, the Holm-adjusted p-value and the verdict (`comparisons.csv`).", ""]
    for num_labels in label_counts:
        out += [f"**{num_labels} labels**", "", *_comparison_table(study, num_labels), ""]
    out += ["### What the comparisons say", ""]
    found = claims(study["comparisons"])
    for num_labels in label_counts:
        out += [f"- {claim['text']}" for claim in found if claim["num_labels"] == num_labels]
    out += [""]
    pooled = pooled_claims(results)
    if pooled:
        out += ["Pooled over k (each seed's difference averaged over k, the same test; a Holm adjustment of their own):",
                "", *[f"- {claim['text']}" for claim in pooled], ""]
    question = paper_question(study)
    if question:
        out += ["### The paper's +7 %", "",
                f"Chollet (2016) reports the embedding head {_percent(PAPER_GAIN)} above the sigmoid head (relative "
                f"MAP@100). Here:", "", *[f"- {sentence}" for sentence in question], ""]
    out += ["### Described, not tested", "",
            "No comparison in `comparisons.csv` is about these numbers; they describe the runs.", ""]
    for num_labels in label_counts:
        out += _optional_table(rows, num_labels, "ceiling_map_at_100",
                               f"Decoding ceilings (the MAP@100 of ideal targets decoded: the best any head could reach "
                               f"with that embedding), {num_labels} labels:", per_seed=False)
        companions = _optional_table(rows, num_labels, "companion_share",
                                     f"Share of the most confident false positives that are a high-PMI companion of a "
                                     f"true label (mean ± sd over seeds), {num_labels} labels:")
        flat_companions = _flat_heads(rows, num_labels, "companion_share") if companions else ""
        out += companions + ([f"Without k: {flat_companions}.", ""] if flat_companions else [])
    out += _figures(folder, prefix, ["curves.png", "per_label_ap.png", "errors.png"])
    out += ["## What it does not say", "", *_limits(study, gaps), ""]
    if gaps and rerun_grid is not None:
        estimate = rerun_estimate(rerun_grid, study)
        out += ["## The rerun", "",
                f"[`{prefix}/grid.toml`]({prefix}/grid.toml) is the grid of the protocol:", "",
                *_markdown_table(["", ""], _grid_lines(estimate["grid"])), "", *_rerun(estimate, "docs/study/grid.toml"), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def _limits(study: dict, gaps: list[str]) -> list[str]:
    data = study["results"].get("grid", {}).get("data", {})
    limits = [f"- {gap[0].upper()}{gap[1:]}." for gap in gaps] + _capped_runs(study) + _collapsed_runs(study)
    if not data.get("path"):
        seeds, missing, spurious, size = (data.get(key) for key in ("seed", "missing_rate", "spurious_rate", "size"))
        count = (lambda value: len(value) if isinstance(value, list) else 1)
        limits.append(f"- One data family (generated emoji scenes, {_values(size)}×{_values(size)}), {count(seeds)} data "
                      f"seed{'s' if count(seeds) > 1 else ''}, {count(missing) * count(spurious)} noise "
                      f"level{'s' if count(missing) * count(spurious) > 1 else ''} (missing {_values(missing)}, "
                      f"spurious {_values(spurious)})" + (_noise_note(study["rows"]) if any(
                          value > 0 for value in _listed(missing) + _listed(spurious)) else "") + ".")
    return limits


def _capped_runs(study: dict) -> list[str]:
    """A limit line counting the runs that reached the cap of epochs before their stopping rule fired (none: no line)."""
    rows = study["rows"]
    if "epochs_to_convergence" not in rows or rows["epochs_to_convergence"].isna().all():
        return []  # no stopping rule: convergence is not known, which the protocol's gaps say
    capped = int(rows["epochs_to_convergence"].isna().sum())
    if not capped:
        return []
    train = study["results"].get("grid", {}).get("train", {})
    cap, patience = train.get("epochs"), train.get("patience")
    line = (f"- {capped} of {len(rows)} runs reached the cap of {cap} epochs before their stopping rule fired (\"at the "
            f"cap\" in the tables of epochs above): their values are those of the cap, not converged ones")
    rises = _last_rises(study, rows[rows["epochs_to_convergence"].isna()], patience)
    if len(rises):
        line += (f"; over its last {patience} epochs each one's best hold-out MAP@100 still rose, by a median of "
                 f"{np.median(rises):.4f} (at most {np.max(rises):.4f})")
    return [line + "."]


def _histories(study: dict) -> dict:
    """Each run's epoch records, by (cell, head, seed)."""
    return {(entry["cell"], entry["head"], int(entry["seed"])): entry["history"]
            for entry in study["results"].get("histories") or []}


def _holdout_values(histories: dict, row) -> list:
    """A run's hold-out MAP@100 epoch by epoch (``None`` where an epoch did not record it)."""
    return [record.get("holdout_map_at_100") for record in histories.get((row.cell, row.head, int(row.seed)), [])]


#: A run collapsed when its last hold-out MAP@100 is below this share of its best one.
COLLAPSE_SHARE = 0.5


def _collapsed_runs(study: dict) -> list[str]:
    """A limit line naming the runs whose hold-out collapsed (its last MAP@100 below half its best; none: no line).

    A run's value is the mean of its last epochs, so a run whose training diverged late is counted
    at its collapsed value; the line says which runs, and how far they fell.
    """
    rows = study["rows"]
    histories = _histories(study)
    several_counts = "num_labels" in rows and rows["num_labels"].nunique() > 1
    fallen = []
    for row in rows.itertuples():
        values = [value for value in _holdout_values(histories, row) if value is not None]
        if values and max(values) > 0 and values[-1] < COLLAPSE_SHARE * max(values):
            best = int(np.argmax(values)) + 1
            where = (f" at {int(row.num_labels)} labels" if several_counts else "") + (
                f" at k = {int(row.dim)}" if row.head in K_HEADS else "")
            rate = getattr(row, "learning_rate", math.nan)
            fallen.append(f"{row.head}{where}, seed {int(row.seed)} (hold-out MAP@100 {max(values):.3f} at epoch "
                          f"{best}, {values[-1]:.3f} at its last, epoch {len(values)}"
                          + ("" if math.isnan(rate) else f", learning rate {rate:g}") + ")")
    if not fallen:
        return []
    return [f"- {len(fallen)} of {len(rows)} runs collapsed (the last hold-out MAP@100 "
            f"below {COLLAPSE_SHARE:g} of the run's best): {'; '.join(fallen)}. A run's value is the mean of its last "
            f"epochs, so it is counted at its collapsed value; its head's mean and spread in the tables include it."]


def _last_rises(study: dict, capped, patience) -> np.ndarray:
    """How much each capped run's best hold-out MAP@100 rose over its last ``patience`` epochs (what kept it going)."""
    histories = _histories(study)
    rises = []
    for row in capped.itertuples():
        values = _holdout_values(histories, row)
        if not patience or len(values) <= patience or any(value is None for value in values):
            continue
        rises.append(max(values[-patience:]) - max(values[:-patience]))
    return np.asarray(rises, dtype=np.float64)


def _noise_note(rows) -> str:
    clean = "map_at_100_clean" in rows and not rows["map_at_100_clean"].isna().all()
    return ("; MAP@100 is scored on the noisy validation labels" + (" (the clean-label score is in the table above)"
                                                                     if clean else ", and no clean-label score was kept"))


def _last(rows) -> str:
    """How many last epochs a run's value averages, in words."""
    fewest = int(rows["epochs"].min()) if len(rows) else LAST_EPOCHS
    return f"last {LAST_EPOCHS} epochs" if fewest >= LAST_EPOCHS else f"last min({LAST_EPOCHS}, its epochs) epochs"


def readme_summary(study: dict, *, rerun_grid=None, extra=()) -> str:
    """The README's block (between :data:`README_BEGIN` and :data:`README_END`): the study in a few generated lines.

    ``extra``: lines added at its end, after a blank line (the C ≥ 1,500 study's,
    :func:`workbench.experiments.report_large.large_readme_line`).
    """
    gaps = protocol_gaps(study)
    lines = [README_BEGIN,
             f"{_headline(gaps)} {_overview(study)} "
             + (f"It misses the current protocol: {'; '.join(gaps)}. " if gaps else "")
             + _statistics_text(study).replace("a run's value", "A run's value", 1), ""]
    lines += [f"- {claim['text']}" for claim in pooled_claims(study["results"]) if claim["head"] == FOCUS_HEAD]
    lines += [f"- The paper's {_percent(PAPER_GAIN)}: {sentence[0].lower()}{sentence[1:]}" for sentence in paper_question(study)]
    if gaps and rerun_grid is not None:
        estimate = rerun_estimate(rerun_grid, study)
        lines += ["", f"The rerun with the protocol ({estimate['runs']} runs plus at least {estimate['tuning_runs']} tuning "
                      f"runs; about {_minutes(estimate['seconds_study_epochs'])}, at most "
                      f"{_minutes(estimate['seconds_cap'])} on this machine): `workbench experiment --grid "
                      f"docs/study/grid.toml --out results/study --cores 2`, then `.venv/bin/python docs/study/write_study.py "
                      f"--publish results/study`."]
    if extra:
        lines += ["", *extra]
    lines += [README_END]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between :data:`README_BEGIN` and :data:`README_END` (both included) replaced by ``block``."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"No study summary block in the text: put the lines {README_BEGIN!r} and {README_END!r} where "
                         f"it belongs.")
    return text[:start] + block + text[end + len(README_END):]
