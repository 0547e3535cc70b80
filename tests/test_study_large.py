"""The C >= 1,500 study's publication: a tiny two-stage experiment published, its section generated and checked.

Every claim sentence of the section is parsed back and checked against comparisons.csv (verdict,
every k, Holm-adjusted p bound); the AP per frequency bin is recomputed by brute force from the
runs' analysis files; the ceilings, the trunk's record and the wall-clock time are those of the
experiment folder; without a published folder the section says the study has not been run.
"""

import importlib.util
import json
import re
import shutil
import tomllib
from pathlib import Path

import pandas as pd
import pytest

from tests.test_study import claim_problems
from workbench.experiments import publication, report, report_large, study as studies
from workbench.experiments.results import read_results

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "study"
GRID = STUDY / "grid-1870.toml"
HEADS = ["pmi", "shuffled", "random-matched", "learned", "sigmoid-lowrank", "identity", "sigmoid"]
SEEDS = [0, 1, 2, 3]


def _write_study_module():
    spec = importlib.util.spec_from_file_location("write_study_large", STUDY / "write_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """A finished two-stage experiment: 8 labels, k = 2 and 3, every head, 4 seeds (about a minute)."""
    pytest.importorskip("keras")
    pytest.importorskip("workbench.learning.twostage")  # the two-stage protocol
    from workbench.experiments.experiment import run_experiment
    from workbench.experiments.grid import parse_grid

    grid = parse_grid({"data": {"labels": 8, "images": 96, "size": 16, "validation_fraction": 0.25},
                       "embedding": {"dim": [2, 3]},
                       "train": {"heads": HEADS, "seeds": SEEDS, "epochs": 2, "image_size": 16, "batch_size": 16,
                                 "width": 4, "depth": 2, "tune_lr": False, "protocol": "two-stage", "trunk_epochs": 2,
                                 "patience": 0, "lr_patience": 0}})
    folder = tmp_path_factory.mktemp("large") / "experiment"
    results = run_experiment(grid, out_dir=folder, cores=1, print_function=lambda line: None)
    assert not results["failed"]
    return folder


@pytest.fixture(scope="module")
def published(experiment, tmp_path_factory):
    folder = tmp_path_factory.mktemp("published") / "large"
    publication.publish_study(experiment, folder)
    return folder


# ------------------------------------------------------------------------------------------ without a run


def test_the_bins_hold_every_count_once():
    counts = [0, 3, 19, 20, 49, 50, 99, 100, 199, 200, 1467]
    assert publication.label_bins(counts).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert [publication.bin_name(low, high) for low, high in publication.FREQUENCY_BINS] == \
        ["<20", "20–49", "50–99", "100–199", "≥200"]


def test_without_a_published_folder_the_section_says_the_study_has_not_been_run(tmp_path):
    module = _write_study_module()
    texts = module.texts(large=tmp_path / "absent")
    note, readme = texts[module.NOTE], texts[module.README]
    section = note[note.index(report_large.SECTION_MARKER):]
    assert "# The study at C = 1,870 labels: not run yet" in section
    assert "**The C = 1,870 study has not been run yet**" in section
    assert "workbench experiment --grid docs/study/grid-1870.toml --out results/study-1870 --cores 2" in section
    assert ".venv/bin/python docs/study/write_study.py --publish-large results/study-1870" in section
    assert "[`study/data-card-1870.md`](study/data-card-1870.md)" in section
    for word in ("MAP@100", "±", "Holm", "AP"):  # no result, no p-value
        assert word not in section
    assert re.search(r"\d\.\d", section) is None  # no decimal number at all
    assert (f"{report_large.README_PREFIX}1,870 labels** (two-stage protocol, `docs/study/grid-1870.toml`) has not "
            f"been run yet.") in readme
    # what the repository ships is this text (docs/study/large/ is published once the study has run)
    if not module.LARGE.is_dir():
        assert (ROOT / "docs" / "study.md").read_text(encoding="utf-8") == note


def test_epochs_to_convergence_are_over_the_runs_that_converged_and_the_rest_are_counted_at_the_cap():
    rows = pd.DataFrame([{"head": head, "dim": dim, "seed": seed, "epochs": 20 if value is None else value + 3,
                          "epochs_to_convergence": value}
                         for head, dim, values in (("pmi", 2, (4, 6, None)), ("pmi", 3, (9, 9, 9)),
                                                   ("sigmoid", None, (8, 8, 8)))
                         for seed, value in enumerate(values)])
    assert report_large._convergence(rows[(rows["head"] == "pmi") & (rows["dim"] == 2)]) == ("5.0 ± 1.4", "1 of 3")
    assert report_large._convergence(rows[rows["head"] == "sigmoid"]) == ("8.0 ± 0.0", "0 of 3")
    study = {"rows": rows, "results": {"grid": {"train": {"epochs": 20}}}}
    text = report_large._convergence_text(study)
    assert "sigmoid: 8.0 ± 0.0 epochs (0 of 3 runs at the cap); pmi: 5.0 ± 1.4 epochs (1 of 3 runs at the cap) at k = 2" in text
    assert "pmi needed fewer epochs than sigmoid at k = 2; pmi needed more epochs than sigmoid at k = 3." in text
    assert "the cap is 20 epochs" in text
    # the limits count the run at the cap and say how much its hold-out was still rising
    history = [{"holdout_map_at_100": value} for value in (0.1, 0.2, 0.3, 0.31, 0.31, 0.315)]
    study["results"] = {"grid": {"train": {"epochs": 20, "patience": 3, "tune_lr": True}, "data": {}},
                        "histories": [{"cell": "grid", "head": "pmi", "seed": 2, "history": history}]}
    study["rows"] = rows.assign(cell="grid")
    limits = report_large._limits({**study, "comparisons": pd.DataFrame()})
    assert limits[-1].startswith("- 1 of 9 runs reached the cap of 20 epochs before their stopping rule fired")
    assert limits[-1].endswith("by a median of 0.0150 (at most 0.0150).")


def test_the_named_label_count_is_the_grids():
    if not GRID.is_file():
        pytest.skip("docs/study/grid-1870.toml is not in this checkout")
    labels = tomllib.loads(GRID.read_text(encoding="utf-8"))["data"]["labels"]
    assert _write_study_module().LARGE_LABELS == labels


# ------------------------------------------------------------------------------------------ a tiny study


@pytest.mark.slow
def test_publishing_copies_the_results_and_writes_the_derived_files(experiment, published):
    for name in ("results.csv", "comparisons.csv"):
        assert (published / name).read_bytes() == (experiment / name).read_bytes()
    results, source = read_results(published), read_results(experiment)
    assert "per_label" not in results and results["comparisons"] == source["comparisons"]
    record = json.loads((published / publication.RUN_FILE).read_text())
    invocations = json.loads((experiment / "experiment.json").read_text())["invocations"]
    assert record["seconds"] == pytest.approx(sum(entry["seconds"] for entry in invocations)) and record["seconds"] > 0
    trunks = list((experiment / "trunks").glob("*/trunk.json"))
    # the trunk's record, and its run's stopping state (none here: the grid has no stopping rule)
    assert len(trunks) == 1 and record["trunks"] == {trunks[0].parent.name: {**json.loads(trunks[0].read_text()),
                                                                             "stopping": {}}}


@pytest.mark.slow
def test_the_ap_per_frequency_bin_is_the_brute_force_mean_of_each_runs_labels(experiment, published):
    bins = pd.read_csv(published / publication.BINS_FILE)
    expected = {}
    for path in sorted((experiment / "cells").glob("*/runs/*/analysis.json")):
        analysis = json.loads(path.read_text())
        head, seed = path.parent.name.rsplit("-seed", 1)
        sums = {}
        for ap, count in zip(analysis["per_label_ap"], analysis["train_counts"]):
            if ap is None or ap != ap:
                continue
            name = ("<20" if count < 20 else "20–49" if count < 50 else "50–99" if count < 100
                    else "100–199" if count < 200 else "≥200")
            sums.setdefault(name, []).append(ap)
        for name in ("<20", "20–49", "50–99", "100–199", "≥200"):
            values = sums.get(name, [])
            expected[(path.parents[2].name, head, int(seed), name)] = (len(values), sum(values) / len(values)
                                                                       if values else None)
    assert len(bins) == len(expected) == (2 * 5 + 2) * len(SEEDS) * 5
    assert set(bins["bin"]) == {"<20", "20–49", "50–99", "100–199", "≥200"}
    populated = 0
    for row in bins.itertuples():
        count, mean = expected[(row.cell, row.head, int(row.seed), row.bin)]
        assert row.labels == count
        if mean is None:
            assert pd.isna(row.mean_ap)
        else:
            populated += 1
            assert row.mean_ap == pytest.approx(mean, abs=1e-12)
    assert populated >= 2 * (2 * 5 + 2) * len(SEEDS)  # at least two bins hold labels in every run


@pytest.mark.slow
def test_the_ceiling_has_pmi_and_random_at_every_k_and_computes_what_a_cell_lacks(experiment, tmp_path):
    rows = publication.ceiling_rows(experiment)
    found = {(row["dim"], row["embedding"]): row for row in rows}
    assert set(found) == {(2, "pmi"), (2, "random"), (3, "pmi"), (3, "random"), (None, "identity")}
    assert found[(None, "identity")]["map_at_100"] == pytest.approx(1.0)  # no label noise: the identity decodes exactly
    for dim in (2, 3):
        recorded = json.loads((experiment / "cells" / f"dim-{dim}" / "ceiling.json").read_text())["rows"]
        pmi = next(row for row in recorded if row["embedding"] == "pmi")
        assert found[(dim, "pmi")]["map_at_100"] == pmi["map_at_100"] and found[(dim, "pmi")]["computed"] == "with the run"
        assert found[(dim, "random")]["computed"] == "with the run"  # every embedding cell's run computes random too
    # a cell whose ceiling.json has no random row (written before random was always computed): computed at publication
    copy = tmp_path / "experiment"
    for cell in ("dim-2", "dim-3", "no-embedding"):
        (copy / "cells" / cell).mkdir(parents=True)
        shutil.copyfile(experiment / "cells" / cell / "cell.json", copy / "cells" / cell / "cell.json")
        ceiling = json.loads((experiment / "cells" / cell / "ceiling.json").read_text())
        ceiling["rows"] = [row for row in ceiling["rows"] if row["embedding"] != "random"]
        (copy / "cells" / cell / "ceiling.json").write_text(json.dumps(ceiling))
    again = {(row["dim"], row["embedding"]): row for row in publication.ceiling_rows(copy, results=read_results(experiment))}
    for dim in (2, 3):
        assert again[(dim, "random")]["computed"] == "at publication"
        assert again[(dim, "random")]["map_at_100"] == pytest.approx(found[(dim, "random")]["map_at_100"], abs=1e-12)
        assert again[(dim, "random")]["macro_ap"] == pytest.approx(found[(dim, "random")]["macro_ap"], abs=1e-12)


@pytest.mark.slow
def test_every_claim_of_the_section_is_backed_by_a_comparisons_row(published):
    study = publication.load_published(published)
    section = report_large.large_study_markdown(study, grid_path=GRID, labels=1870)
    comparisons, pooled = study["comparisons"], study["results"]["pooled"]
    assert claim_problems(section, comparisons, pooled) == []
    for claim in studies.claims(comparisons):
        assert claim["text"] in section
    # pmi against shuffled, random-matched and learned at every k, and against sigmoid, each has its verdicts
    for baseline in ("shuffled", "random-matched", "learned", "sigmoid"):
        stated = [claim for claim in studies.claims(comparisons) if claim["head"] == "pmi" and claim["baseline"] == baseline]
        assert sorted(dim for claim in stated for dim in claim["dims"]) == [2, 3]
    assert "pmi − sigmoid is" in section and "of sigmoid's MAP@100" in section and "faster convergence" in section
    # the checker can fail: a flipped verdict no longer agrees with the text
    flipped = comparisons.copy()
    flipped.loc[0, "verdict"] = "worse" if flipped.loc[0, "verdict"] == "better" else "better"
    assert claim_problems(section, flipped, pooled)
    # what the section says of the protocol, the data and the time
    assert "# The study at C = 8 labels: the two-stage protocol" in section
    assert "it cannot tell whether a head's targets would train a better trunk" in section
    assert "beside **1.85 h** projected by `benchmarks/bench_study.py`" in section
    seconds = study["run"]["seconds"]
    assert f"({seconds / 3600:.2f} h) of wall-clock time over 1 invocation" in section
    assert "| k | head | MAP@100 (noisy) | MAP@100 (clean) | macro AP | epochs to convergence | at the cap |" in section
    assert f"| 2 | pmi | {_mean_sd(study['rows'], 'pmi', 2, 'map_at_100')} |" in section
    assert f"| — | {len(SEEDS)} of {len(SEEDS)} |" in section  # no stopping rule: every run at the cap
    for row in study["ceiling"].itertuples():
        if row.embedding != "identity":
            assert f"{row.map_at_100:.3f}" in section
    # at equal wall-clock: every head's value at its setting's shortest total, from each run's own epochs
    assert "### At equal wall-clock time" in section
    histories = study["results"]["histories"]
    dim2 = next(entry["cell"] for entry in histories if entry["cell"].endswith("dim-2"))
    pmi_runs = [entry for entry in histories if entry["head"] == "pmi" and entry["cell"] == dim2]
    totals = {}
    for run in histories:
        if run["cell"] in (dim2, "no-embedding"):
            totals.setdefault(run["head"], []).append(sum(record["seconds"] for record in run["history"]))
    equal = min(sum(values) / len(values) for values in totals.values())
    values = []
    for run in pmi_runs:
        elapsed, reached = 0.0, None
        for record in run["history"]:
            elapsed += record["seconds"]
            if elapsed <= equal * (1 + 1e-9) + 1e-9:
                reached = record["map_at_100"]
        values.append(reached)
    kept = [value for value in values if value is not None]
    if kept:
        mean = sum(kept) / len(kept)
        std = (sum((value - mean) ** 2 for value in kept) / (len(kept) - 1)) ** 0.5 if len(kept) > 1 else 0.0
        assert f"| 2 | pmi | {equal:.0f} s | {mean:.3f} ± {std:.3f} |" in section
    else:  # seconds are measured: in some runs no pmi run has finished an epoch by then
        assert f"| 2 | pmi | {equal:.0f} s | — (no run had finished an epoch) |" in section


def _mean_sd(rows, head, dim, column):
    values = rows[(rows["head"] == head) & (rows["dim"] == dim)][column]
    return f"{values.mean():.3f} ± {values.std(ddof=1):.3f}"


@pytest.mark.slow
def test_write_study_publishes_the_large_study_and_writes_both_studies(experiment, tmp_path, monkeypatch):
    module = _write_study_module()
    note, readme = tmp_path / "study.md", tmp_path / "README.md"
    note.write_text(module.NOTE.read_text(encoding="utf-8"), encoding="utf-8")
    readme.write_text(module.README.read_text(encoding="utf-8"), encoding="utf-8")
    for name, value in (("NOTE", note), ("README", readme), ("LARGE", tmp_path / "large")):
        monkeypatch.setattr(module, name, value)
    assert module.main(["--publish-large", str(experiment), "--check"]) == 1  # published; the texts now differ
    assert (tmp_path / "large" / publication.BINS_FILE).is_file()
    assert module.main([]) == 0 and module.main(["--check"]) == 0
    text = note.read_text(encoding="utf-8")
    first, section = text.split(report_large.SECTION_MARKER)
    # the first study is the shipped one (the earlier study, or the rerun once published), written before the section
    assert first == (ROOT / "docs" / "study.md").read_text(encoding="utf-8").split(report_large.SECTION_MARKER)[0]
    assert first.startswith(("# The earlier study", "# The study: when does the PMI structure help?\n"))
    assert "# The study at C = 8 labels: the two-stage protocol" in section
    study = publication.load_published(tmp_path / "large")
    assert claim_problems(section, study["comparisons"], study["results"]["pooled"]) == []
    line = next(line for line in readme.read_text(encoding="utf-8").splitlines()
                if line.startswith(report_large.README_PREFIX))
    assert line.startswith("**The study at C = 8 labels** (two-stage protocol") and "pmi shows no difference" in line
    assert claim_problems(line, study["comparisons"], []) == []
    # the spelling the grid file's comment uses is the same option
    assert module.main(["--publish-1870", str(experiment), "--check"]) == 0


@pytest.mark.slow
def test_publishing_the_first_study_keeps_the_experiment_s_invocations_and_says_its_wall_clock_time(experiment, tmp_path):
    """``write_study.py --publish``: results.json carries ``experiment.json``'s invocations, and the note their sum."""
    module = _write_study_module()
    folder = tmp_path / "study"
    folder.mkdir()
    module.publish(experiment, folder)
    published = read_results(folder)
    invocations = json.loads((experiment / "experiment.json").read_text())["invocations"]
    assert published["run"]["invocations"] == invocations and invocations[-1]["git_commit"]
    assert published["run"]["seconds"] == pytest.approx(sum(entry["seconds"] for entry in invocations))
    note = report.study_markdown(studies.load_study(folder))
    assert (f"of wall-clock time over {len(invocations)} invocation{'s' if len(invocations) > 1 else ''} of "
            f"`workbench experiment`") in note and f"commit `{invocations[-1]['git_commit'][:7]}`" in note


def test_the_trunk_is_said_to_have_converged_only_when_its_stopping_rule_fired():
    assert "had not converged" in report_large._trunk_convergence({"stopping": {"stopped_epoch": None, "best_epoch": 15}})
    assert report_large._trunk_convergence({"stopping": {"stopped_epoch": 12, "best_epoch": 9}}) == \
        ": converged, its best epoch 9"
    assert report_large._trunk_convergence({}) == ""  # trained without a stopping rule: nothing to say


def test_a_head_with_no_epoch_finished_by_the_equal_time_says_so_instead_of_a_number():
    """The equal-time table of a head whose first epoch outlasts the fastest head's whole run: a dash, not NaN."""
    results = {"histories": [{"cell": "dim-2", "head": "pmi", "seed": 0, "history": [{"seconds": 5.0, "map_at_100": 0.3}]},
                             {"cell": "no-embedding", "head": "sigmoid", "seed": 0,
                              "history": [{"seconds": 1.0, "map_at_100": 0.4}]}],
               "cells": {"dim-2": {"settings": {"embedding": {"dim": 2}}}, "no-embedding": {"settings": {}}}}
    table = "\n".join(report_large._equal_time_table({"results": results}))
    assert "| 2 | pmi | 1 s | — (no run had finished an epoch) | 0.0 | 5 s |" in table
    assert "| sigmoid | 1 s | 0.400 ± 0.000 | 1.0 | 1 s |" in table
    assert "nan" not in table
