"""The text of the study at C ≥ 1,500 labels (two-stage protocol): a section of ``docs/study.md`` and a README line.

:func:`large_study_markdown` writes the section from a study published by
:func:`workbench.experiments.publication.publish_study` (``docs/study/large/``, read by
:func:`~workbench.experiments.publication.load_published`); every number and claim comes from its
files. The section names the two-stage protocol and what it cannot tell, the data (with its data
card), MAP@100 on noisy and clean labels, macro AP and epochs to convergence per head and k, AP per
frequency bin, every comparison and the claims made from its verdicts
(:func:`workbench.experiments.study.claims`: pmi against the controls first), the paper's +7 % and
its faster convergence, the decoding ceiling against k, and the actual time beside the projected.
Without a published study (``None``) it says that the study has not been run, with the commands
that run and publish it, and no number of it. :func:`large_readme_line` is its line in the README's
study summary. ``docs/study/write_study.py`` writes both. Keras-free.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from workbench.experiments.comparisons import REFERENCE_HEAD
from workbench.experiments.publication import FREQUENCY_BINS, bin_name
from workbench.experiments.results import equal_time_frame
from workbench.experiments.report import (
    _capped_runs,
    _collapsed_runs,
    _comparison_table,
    _markdown_table,
    _mean_sd,
    _minutes,
    _study_lines,
)
from workbench.experiments.study import (
    CONTROL_HEADS,
    _and,
    _heads,
    _list,
    _seeds,
    claims,
    paper_question,
    pooled_claims,
    protocol_gaps,
)
from workbench.method.targets import K_HEADS

__all__ = ["SECTION_MARKER", "README_PREFIX", "PROJECTED_HOURS", "PROJECTION_SOURCE", "large_study_markdown",
           "large_readme_line"]

#: The first line of the section: ``docs/study.md`` is the first study's note, then this line, then the section.
SECTION_MARKER = "<!-- the study at C >= 1,500 labels: written from docs/study/large/ by docs/study/write_study.py -->"
#: How the README's line about the study begins.
README_PREFIX = "**The study at C = "
#: The two-stage grid's projected time on this machine kind (2 CPU cores), in hours. No file in the
#: repository records it machine-readably: it is the figure of README.md's benchmark table.
PROJECTED_HOURS = 1.85
PROJECTION_SOURCE = ("projected by `benchmarks/bench_study.py` for the two-stage grid (README.md's benchmark table: "
                     "runs of at most 10 epochs, rates tuned, trunk and features included)")
#: The controls pmi is read against first: what the co-occurrence structure adds.
QUESTION_BASELINES = ("shuffled", "random-matched", "learned")


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else _minutes(seconds)


def _commands(grid_name: str, out: str) -> list[str]:
    return ["```bash",
            f"workbench experiment --grid docs/study/{grid_name} --out {out} --cores 2",
            f".venv/bin/python docs/study/write_study.py --publish-large {out}   # into docs/study/large/, this note, README",
            "```"]


def _out_folder(grid_name: str) -> str:
    return "results/" + grid_name.removesuffix(".toml").replace("grid", "study", 1)


def _card(grid_path: Path, labels: int, prefix: str) -> str:
    card = grid_path.parent / f"data-card-{labels}.md"
    return (f"[`{prefix}/{card.name}`]({prefix}/{card.name})" if card.is_file()
            else f"no data card (`{prefix}/{card.name}` is missing)")


def _not_run(grid_path: Path, prefix: str, labels: int) -> list[str]:
    return [f"# The study at C = {labels:,} labels: not run yet", "",
            f"**The C = {labels:,} study has not been run yet**, so nothing here reports a result of it. Its grid is "
            f"[`{prefix}/{grid_path.name}`]({prefix}/{grid_path.name}) (the two-stage protocol: one trunk trained "
            f"once, every head trained on its cached features); its data are described by "
            f"{_card(grid_path, labels, prefix)}. Run it, then publish it (its results into `{prefix}/large/`, this "
            f"section and the README's line written from them):", "",
            *_commands(grid_path.name, _out_folder(grid_path.name))]


# ---------------------------------------------------------------------------------------------- tables


def _num_labels(study: dict) -> int:
    return int(study["rows"]["num_labels"].max())


def _dims(rows) -> list[int]:
    return sorted(int(value) for value in rows[rows["head"].isin(K_HEADS)]["dim"].dropna().unique())


def _cap(study: dict) -> int:
    epochs = study["results"].get("grid", {}).get("train", {}).get("epochs")
    return max(epochs) if isinstance(epochs, list) else int(epochs) if epochs else int(study["rows"]["epochs"].max())


def _convergence(group) -> tuple[str, str]:
    """Epochs to convergence (mean ± sd over the runs that converged) and how many runs reached the cap without."""
    values = group["epochs_to_convergence"] if "epochs_to_convergence" in group else group["epochs"] * np.nan
    converged = values.dropna().to_numpy(dtype=np.float64)
    shown = ("—" if not len(converged) else
             f"{converged.mean():.1f} ± {converged.std(ddof=1) if len(converged) > 1 else 0.0:.1f}")
    return shown, f"{int(values.isna().sum())} of {len(group)}"


def _result_lines(study: dict) -> list[list[str]]:
    rows = study["rows"]
    lines = []
    columns = ["map_at_100", "map_at_100_clean", "macro_ap"]
    shown = [(dim, head) for dim in _dims(rows) for head in _heads(rows) if head in K_HEADS]
    shown += [(None, head) for head in _heads(rows) if head not in K_HEADS]
    for dim, head in shown:
        group = rows[rows["head"] == head]
        group = group[group["dim"] == dim] if dim is not None else group
        if not len(group):
            continue
        size = "C" if head == "identity" else "—"
        lines.append([str(dim) if dim is not None else size, head,
                      *[_mean_sd(group[column]) if column in group else "—" for column in columns], *_convergence(group)])
    return lines


def _bin_tables(study: dict) -> list[str]:
    bins, rows = study["bins"], study["rows"]
    flat = [head for head in _heads(rows) if head not in K_HEADS]
    out = []
    for dim in _dims(rows):
        heads = [head for head in _heads(rows) if head in K_HEADS] + flat
        mine = bins[(bins["dim"] == dim) | bins["head"].isin(flat)]
        lines = []
        for low, high in FREQUENCY_BINS:
            name = bin_name(low, high)
            here = mine[mine["bin"] == name]
            counts = sorted({int(value) for value in here["labels"]})
            line = [f"{name} ({_list(counts)} labels)"]
            for head in heads:
                line.append(_mean_sd(here[here["head"] == head]["mean_ap"]))
            lines.append(line)
        out += [f"**k = {dim}**", "", *_markdown_table(["training images (labels with an AP)", *heads], lines), ""]
    return out


def _ceiling_table(study: dict) -> list[str]:
    ceiling = study["ceiling"]
    lines = []
    for dim in sorted(int(value) for value in ceiling["dim"].dropna().unique()):
        mine = ceiling[ceiling["dim"] == dim]
        line = [str(dim)]
        for name in ("pmi", "random"):
            row = mine[mine["embedding"] == name]
            if not len(row):
                line += ["—", "—"]
                continue
            achieved = int(row["dim_achieved"].iloc[0])
            line += [f"{row['map_at_100'].iloc[0]:.3f}" + (f" (k = {achieved})" if achieved != dim else ""),
                     f"{row['macro_ap'].iloc[0]:.3f}"]
        lines.append(line)
    table = _markdown_table(["k", "pmi MAP@100", "pmi macro AP", "random MAP@100", "random macro AP"], lines)
    identity = ceiling[ceiling["embedding"] == "identity"]
    notes = []
    if len(identity):
        notes.append(f"The identity (k = C = {int(identity['dim_achieved'].iloc[0]):,}): MAP@100 "
                     f"{identity['map_at_100'].iloc[0]:.3f}, macro AP {identity['macro_ap'].iloc[0]:.3f}.")
    later = ceiling[ceiling["computed"] == "at publication"]
    if len(later):
        notes.append(f"The {_and(sorted(set(later['embedding'])))} ceiling{'s' if len(later) > 1 else ''} at k = "
                     f"{_list(sorted(int(value) for value in later['dim'].dropna().unique()))} "
                     f"{'were' if len(later) > 1 else 'was'} computed at publication (the run had not), on the same "
                     f"data set, split and seed.")
    return [*table, "", *notes, ""] if lines else notes


# ---------------------------------------------------------------------------------------------- words


def _time_text(study: dict) -> str:
    run = study["run"]
    seconds = run.get("seconds")
    invocations = len(run.get("invocations") or [])
    if not seconds:
        return f"not recorded (no invocation in `experiment.json`); {PROJECTED_HOURS:g} h {PROJECTION_SOURCE}"
    return (f"**{_duration(seconds)}** ({seconds / 3600:.2f} h) of wall-clock time over {invocations} "
            f"invocation{'s' if invocations != 1 else ''} of `workbench experiment` (`experiment.json`), beside "
            f"**{PROJECTED_HOURS:g} h** {PROJECTION_SOURCE}")


def _trunk_text(study: dict) -> str:
    trunks = study["run"].get("trunks") or {}
    train = study["results"].get("grid", {}).get("train", {})
    parts = []
    for record in trunks.values():
        model = record.get("model", {})
        value = record.get("validation_map_at_100")
        own = (record.get("trunk") or {}).get("images")
        where = ("scenes of its own (the same generator drawn on past the study's images, so none of them is a head's "
                 "or a validation image)" if own else "images of the training split")
        parts.append(f"{model.get('image_size')}×{model.get('image_size')} pixels, width {model.get('width')}, depth "
                     f"{model.get('depth')}, trained once with the sigmoid head on {record.get('num_trunk_images'):,} "
                     f"{where} ({record.get('epochs_trained')} epochs of at most {train.get('trunk_epochs', '?')}"
                     + _trunk_convergence(record) + f", {_duration(record.get('seconds') or 0)}; MAP@100 "
                     + (f"{value:.3f}" if value is not None else "—")
                     + " on the tenth of its images it held out); features of "
                     f"{record.get('num_features')} values cached for all {record.get('num_images'):,} images")
    return "; ".join(parts) or "no trunk recorded"


def _trunk_convergence(record: dict) -> str:
    """Whether the trunk's stopping rule ended its training, in words (its epochs to convergence, or not converged)."""
    stopping = record.get("stopping") or {}
    if not stopping:
        return ""
    if stopping.get("stopped_epoch") is None:
        return ": it reached the cap without its stopping rule firing, so **it had not converged**"
    return f": converged, its best epoch {stopping.get('best_epoch')}"


def _heads_images(study: dict) -> str:
    """Which images the heads trained on: the whole training split, or what the trunk's share left of it."""
    own = all((record.get("trunk") or {}).get("images") for record in (study["run"].get("trunks") or {}).values())
    return "the whole training split" if own else "the other images of the training split (the trunk's share left out)"


def _equal_time_table(study: dict) -> list[str]:
    """Each head's validation MAP@100 at the training seconds of the setting's fastest head (equal wall-clock)."""
    frame = equal_time_frame(study["results"])
    if not len(frame):
        return []
    cells = study["results"].get("cells", {})
    lines = []
    for record in frame.to_dict("records"):
        embedding = (cells.get(record["cell"], {}).get("settings") or {}).get("embedding") or {}
        lines.append([str(embedding.get("dim", "—")), record["head"], f"{record['seconds']:.0f} s",
                      f"{record['map_at_100_mean']:.3f} ± {record['map_at_100_std']:.3f}" if record["seeds"]
                      else "— (no run had finished an epoch)", f"{record['epochs']:.1f}",
                      f"{record['total_seconds']:.0f} s"])
    return ["### At equal wall-clock time", "",
            "Every head's validation MAP@100 at the same training seconds: those of the setting's fastest head (a "
            "head's time: the mean over seeds of its runs' summed epoch seconds, evaluation not counted; each run "
            "contributes its last epoch completed by then). Seconds were measured on the 2 cores that ran the grid, "
            "two cells at a time; no comparison is about them.", "",
            *_markdown_table(["k", "head", "equal time", "MAP@100 then", "epochs by then", "the head's own time"], lines),
            ""]


def _limits(study: dict) -> list[str]:
    data = study["results"].get("grid", {}).get("data", {})
    limits = [
        "- **One fixed trunk.** Every head reads the same representation, learned once for the sigmoid head's "
        "objective on other images. The study says which head reads these features best; it cannot tell whether a "
        "head's targets (PMI sums, one-hot rows, sigmoid outputs) would train a better trunk, which is part of the "
        "paper's claim. An end-to-end study (`docs/study/grid-full.toml`, for a GPU) is what can.",
        "- **Features shaped for sigmoid.** The trunk was trained through one linear layer into C sigmoids, so its "
        "features are those a sigmoid layer reads well: sigmoid and sigmoid-lowrank read them on home ground, and "
        "their gap to the embedding heads here is not the gap an end-to-end study would measure.",
        "- Epochs to convergence are epochs of a head on fixed features, not of a network; no comparison tests them.",
        f"- One data family and data seed (generated emoji scenes, {data.get('size')}×{data.get('size')} pixels, "
        f"label noise missing {data.get('missing_rate')} and spurious {data.get('spurious_rate')}); glyphs that look "
        f"alike at that size bound every head (the data card lists them).",
        "- The decoding ceilings and the AP per frequency bin describe the runs; no comparison is about them.",
    ]
    gaps = protocol_gaps(study)
    if gaps:
        limits.append(f"- It misses the protocol: {'; '.join(gaps)}.")
    return limits + _capped_runs(study) + _collapsed_runs(study)


def _claim_lists(study: dict) -> list[str]:
    found = claims(study["comparisons"])
    question = [claim for baseline in QUESTION_BASELINES for claim in found
                if claim["head"] == "pmi" and claim["baseline"] == baseline]
    rest = [claim for claim in found if claim not in question and not (claim["head"] == "pmi"
                                                                         and claim["baseline"] == "sigmoid")]
    out = ["pmi against the controls that keep its geometry or its k but not the co-occurrence (shuffled rows, "
           "Gaussian directions at each label's PMI norm, a learned k-wide embedding):", "",
           *([f"- {claim['text']}" for claim in question] or ["- (none of these comparisons was made)"]), ""]
    if rest:
        out += ["The other comparisons (pmi against the other heads, every other head against sigmoid):", "",
                *[f"- {claim['text']}" for claim in rest], ""]
    pooled = pooled_claims(study["results"])
    if pooled:
        out += ["Pooled over k (each seed's difference averaged over k, the same test; Holm across the pooled tests):",
                "", *[f"- {claim['text']}" for claim in pooled], ""]
    return out


def _convergence_text(study: dict, *, head: str = "pmi", baseline: str = "sigmoid") -> str:
    rows = study["rows"]
    if "epochs_to_convergence" not in rows:
        return ""
    reference = rows[rows["head"] == baseline]
    mine = rows[rows["head"] == head]
    if not len(reference) or not len(mine):
        return ""
    cap = _cap(study)

    def described(group) -> str:
        mean_sd, capped = _convergence(group)
        return (f"{mean_sd} epochs" if mean_sd != "—" else "no run converged") + f" ({capped} runs at the cap)"

    parts, fewer, more = [], [], []
    base = reference["epochs_to_convergence"].dropna().mean() if reference["epochs_to_convergence"].notna().any() else math.nan
    for dim in _dims(rows):
        group = mine[mine["dim"] == dim]
        parts.append(f"{described(group)} at k = {dim}")
        value = group["epochs_to_convergence"].dropna().mean() if group["epochs_to_convergence"].notna().any() else math.nan
        if not math.isnan(value) and not math.isnan(base):
            (fewer if value < base else more if value > base else []).append(dim)
    text = (f"The paper's faster convergence, described, not tested (no comparison is about epochs; the cap is {cap} "
            f"epochs, and these are epochs of a head on fixed features): {baseline}: {described(reference)}; "
            f"{head}: {_list(parts)}.")
    if fewer or more:
        text += " On average " + "; ".join(
            f"{head} needed {word} epochs than {baseline} at k = {_list(dims)}" for word, dims in (("fewer", fewer),
                                                                                                  ("more", more)) if dims)
        text += "."
    return text


def large_study_markdown(study: dict | None, *, grid_path, labels: int, prefix: str = "study") -> str:
    """The section of ``docs/study.md`` on the C ≥ 1,500 study, beginning with :data:`SECTION_MARKER`.

    Parameters
    ----------
    study : dict or None
        From :func:`workbench.experiments.publication.load_published`; ``None``: not published yet.
    grid_path : path
        Its grid file (``docs/study/grid-1870.toml``, not read); the data card is ``data-card-<C>.md`` beside it.
    labels : int
        The grid's label count C, named while the study has not been run (the published rows give it after).
    prefix : str, default="study"
        The study folder as the note links it (relative to the note).

    Returns
    -------
    str
        Markdown, ending in a newline.
    """
    grid_path = Path(grid_path)
    if study is None:
        return "\n".join([SECTION_MARKER, *_not_run(grid_path, prefix, labels)]) + "\n"
    rows, results = study["rows"], study["results"]
    labels = _num_labels(study)
    images = int(rows["num_images"].max())
    data = results.get("grid", {}).get("data", {})
    heads = _heads(rows)
    sources = ", ".join(f"[`{name}`]({prefix}/large/{name})" for name in (
        "results.csv", "comparisons.csv", "results.json", "frequency_bins.csv", "ceiling.csv", "run.json"))
    lines = [line for line in _study_lines(study) if line[0] != "time"]
    lines += [["protocol", f"**two-stage**: one trunk ({_trunk_text(study)}); every head of every k trained on those "
                           f"features of {_heads_images(study)}"],
              ["time", _time_text(study)]]
    gaps = protocol_gaps(study)
    out = [SECTION_MARKER,
           f"# The study at C = {labels:,} labels: the two-stage protocol", "",
           f"*Written by [`{prefix}/write_study.py`]({prefix}/write_study.py) from {sources} in `{prefix}/large/` "
           f"(published from the experiment folder by `write_study.py --publish-large`): every number and every claim "
           f"below comes from them.*", "",
           f"One grid: **{labels:,} labels**, {images:,} generated emoji scenes of "
           f"{data.get('size')}×{data.get('size')} pixels (the data: {_card(grid_path, labels, prefix)}), "
           f"k ∈ {{{_list(_dims(rows))}}} (C/k = {_list(round(labels / dim) for dim in _dims(rows))}), heads "
           f"{_and(heads)}, {_seeds(rows)} seeds ({len(rows)} runs).", "",
           "**The two-stage protocol.** One trunk was trained once, and every head was trained on its cached features. "
           "It tells which head reads one fixed representation best; **it cannot tell whether a head's targets would "
           "train a better trunk** (part of the paper's claim), and its epochs to convergence are a head's on fixed "
           "features.", "",
           ("**Run with the protocol**: at least 5 seeds, the controls " + _list(CONTROL_HEADS)
            + ", learning rates tuned, a stopping rule." if not gaps else
            f"**It misses the protocol** in {len(gaps)} way{'s' if len(gaps) > 1 else ''}: {'; '.join(gaps)}."), "",
           "## How it was run", "", *_markdown_table(["", ""], lines), "",
           "## Results", "",
           f"Final validation MAP@100 on the noisy labels (the labels trained on) and on the clean ones (the glyphs "
           f"drawn), macro AP, and epochs to convergence (the epoch of the best hold-out MAP@100, over the runs the "
           f"stopping rule stopped; the last column: runs that reached the cap of {_cap(study)} epochs without it): "
           f"mean ± standard deviation over seeds. Identity and sigmoid do not depend on k (one set of runs).", "",
           *_markdown_table(["k", "head", "MAP@100 (noisy)", "MAP@100 (clean)", "macro AP", "epochs to convergence",
                             "at the cap"], _result_lines(study)), "",
           "### AP per frequency bin", "",
           f"Labels binned by their training images (the images the heads trained on: {_heads_images(study)}); "
           "each run's mean AP over a bin's labels (a label without a validation positive has no AP and is skipped), "
           "mean ± standard deviation over seeds. Rare labels are where the paper's argument is strongest. Identity and "
           "sigmoid are the same runs at every k.", "",
           *_bin_tables(study),
           "## Comparisons", "",
           "Each head against each baseline at every k (pmi against every other head, every other head against "
           "sigmoid): the mean paired difference of MAP@100, the seeds where the head was higher, the test, the "
           "Holm-adjusted p-value (across this grid's comparisons) and the verdict (`comparisons.csv`).", "",
           *_comparison_table(study, labels), "",
           "### What the comparisons say", "", *_claim_lists(study)]
    question = paper_question(study)
    convergence = _convergence_text(study)
    if question or convergence:
        out += ["### The paper's claims: +7 % and faster convergence", "",
                *[f"- {sentence}" for sentence in question], *([f"- {convergence}"] if convergence else []), ""]
    out += _equal_time_table(study)
    out += ["### The decoding ceiling against k", "",
            "The MAP@100 and macro AP of ideal targets decoded (the best any head could reach with that embedding), for "
            "the PMI embedding and random Gaussian vectors of the same k, on the validation split:", "",
            *_ceiling_table(study),
            "## What it does not say", "", *_limits(study), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def large_readme_line(study: dict | None, *, grid_path, labels: int) -> str:
    """The README's line on the study: its verdicts for pmi against the controls and sigmoid, or that it has not been run
    (``grid_path`` and ``labels`` as :func:`large_study_markdown` takes them)."""
    grid_path = Path(grid_path)
    if study is None:
        return (f"{README_PREFIX}{labels:,} labels** (two-stage protocol, `docs/study/{grid_path.name}`) has not been "
                f"run yet.")
    found = [claim["text"] for baseline in (*QUESTION_BASELINES, REFERENCE_HEAD) for claim in claims(study["comparisons"])
             if claim["head"] == "pmi" and claim["baseline"] == baseline]
    return (f"{README_PREFIX}{_num_labels(study):,} labels** (two-stage protocol: one fixed trunk, trained with the "
            f"sigmoid head, heads on its features; `docs/study.md`): " + " ".join(found))
