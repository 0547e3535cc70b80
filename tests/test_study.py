"""docs/study.md and the README's study summary are written from the study's data, and every claim is backed by it.

The shipped note is regenerated from docs/study/ and must be identical; every claim sentence of
it, and of the note of a synthetic study with real differences, is parsed back and checked
against the comparisons table it names (verdict, every k, the Holm-adjusted p bound), and the
words "better than"/"worse than" appear nowhere else.
"""

import csv
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from workbench.experiments import report, report_large, study as studies
from workbench.experiments.comparisons import comparisons_csv, grid_comparisons
from workbench.experiments.grid import expand_cells, parse_grid
from workbench.experiments.results import read_results, write_results

ROOT = Path(__file__).resolve().parents[1]
STUDY = ROOT / "docs" / "study"

CLAIM = re.compile(r"(?P<head>[\w-]+) (?P<phrase>is better than|is worse than|shows no difference from) "
                   r"(?P<baseline>[\w-]+) at (?P<labels>\d+) labels(?: for k = (?P<dims>\d+(?:, \d+)*))? "
                   r"\(Holm-adjusted p (?P<op>[=≤≥<]) (?P<p>[\d.e+-]+)\)\.")
POOLED = re.compile(r"Pooled over k = (?P<dims>\d+(?:, \d+)*) at (?P<labels>\d+) labels, (?P<head>[\w-]+) "
                    r"(?P<phrase>is better than|is worse than|shows no difference from) (?P<baseline>[\w-]+) "
                    r"\(Holm-adjusted p [=<] (?P<p>[\d.e+-]+) across the (?P<tests>\d+) pooled tests; (?P<won>\d+) of "
                    r"(?P<pairs>\d+) seed pairs favour (?P=head)\)\.")
VERDICTS = {"is better than": "better", "is worse than": "worse", "shows no difference from": "no difference"}


def _p(value: float) -> str:
    return "1e-300" if value == 0 else f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def claim_problems(text: str, comparisons: pd.DataFrame, pooled: list) -> list[str]:
    """Every claim sentence of ``text`` checked against ``comparisons`` (comparisons.csv) and ``pooled``; what is wrong."""
    problems = []
    matches = list(CLAIM.finditer(text))
    for match in matches:
        rows = comparisons[(comparisons["num_labels"] == int(match["labels"])) & (comparisons["head"] == match["head"])
                           & (comparisons["baseline"] == match["baseline"])]
        verdict = VERDICTS[match["phrase"]]
        stated = {int(dim) for dim in match["dims"].split(", ")} if match["dims"] else set()
        having = rows[rows["verdict"] == verdict]
        dims = {int(dim) for dim in having["dim"].dropna()}
        if not len(having) or dims != stated or (not stated and having["dim"].notna().any()):
            problems.append(f"{match[0]!r}: comparisons.csv gives {verdict!r} at k = {sorted(dims)}")
            continue
        values = having["p_adjusted"].to_numpy()
        bound = {"=": values.max(), "≤": values.max(), "≥": values.min(), "<": values.max()}[match["op"]]
        if _p(bound) != match["p"] or (match["op"] == "=" and len({_p(value) for value in values}) != 1):
            problems.append(f"{match[0]!r}: the Holm-adjusted p-values are {sorted(values)}")
    pooled_matches = list(POOLED.finditer(text))
    for match in pooled_matches:
        entries = [entry for entry in pooled if entry["num_labels"] == int(match["labels"]) and entry["head"] == match["head"]
                   and entry["baseline"] == match["baseline"]]
        if len(entries) != 1:
            problems.append(f"{match[0]!r}: no pooled test")
            continue
        entry = entries[0]
        if (entry["verdict"] != VERDICTS[match["phrase"]] or _p(entry["p_adjusted"]) != match["p"]
                or [int(dim) for dim in match["dims"].split(", ")] != entry["dims"] or int(match["tests"]) != len(pooled)
                or (int(match["won"]), int(match["pairs"])) != (entry["seed_pairs_won"], entry["seed_pairs"])):
            problems.append(f"{match[0]!r}: the pooled test is {entry}")
    for word in ("better than", "worse than"):
        claimed = sum(match[0].count(word) for match in matches + pooled_matches)
        if text.count(word) != claimed:
            problems.append(f"{word!r} appears {text.count(word)} times, {claimed} of them in claims")
    return problems


def _write_study_module():
    spec = importlib.util.spec_from_file_location("write_study", STUDY / "write_study.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ the shipped study


def test_docs_study_md_and_the_readme_summary_are_what_the_shipped_data_give():
    for path, text in _write_study_module().texts().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} differs from what docs/study/ gives: run .venv/bin/python docs/study/write_study.py")


def test_write_study_check_fails_on_a_hand_edit(tmp_path, monkeypatch):
    module = _write_study_module()
    note, readme = tmp_path / "study.md", tmp_path / "README.md"
    note.write_text(module.NOTE.read_text(encoding="utf-8").replace("no difference", "better", 1), encoding="utf-8")
    readme.write_text(module.README.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(module, "NOTE", note)
    monkeypatch.setattr(module, "README", readme)
    assert module.main(["--check"]) == 1
    assert module.main([]) == 0 and module.main(["--check"]) == 0
    assert note.read_text(encoding="utf-8") == module.texts()[note]


def test_every_claim_of_the_shipped_note_and_readme_is_backed_by_comparisons_csv():
    study = studies.load_study(STUDY)
    # the first study's part: the note before the C >= 1,500 study's section, the block without its line
    # (tests/test_study_large.py checks those against docs/study/large/)
    note = (ROOT / "docs" / "study.md").read_text(encoding="utf-8").split(report_large.SECTION_MARKER)[0]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = "\n".join(line for line in readme[readme.index(report.README_BEGIN):readme.index(report.README_END)].splitlines()
                      if not line.startswith(report_large.README_PREFIX))
    assert CLAIM.search(note) and POOLED.search(note)
    assert CLAIM.search(block) or POOLED.search(block)  # the summary: the per-cell claims, or the pooled ones
    for text in (note, block):
        assert claim_problems(text, study["comparisons"], study["results"]["pooled"]) == []
    # the checker can fail: flip one verdict in the table and the note no longer agrees with it
    flipped = study["comparisons"].copy()
    flipped.loc[0, "verdict"] = "worse" if flipped.loc[0, "verdict"] == "better" else "better"
    assert claim_problems(note, flipped, study["results"]["pooled"])


def _shipped_is_the_earlier_study() -> bool:
    return bool(studies.protocol_gaps(studies.load_study(STUDY)))


def test_the_shipped_comparisons_are_the_tests_of_the_shipped_results():
    results = read_results(STUDY)
    with open(STUDY / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["cell"], row["head"], int(row["seed"]), float(row["map_at_100"])) for row in rows] == \
        [(row["cell"], row["head"], row["seed"], row["map_at_100"]) for row in results["rows"]]
    assert (STUDY / "comparisons.csv").read_text(encoding="utf-8") == comparisons_csv(results)
    if results.get("paired_on") == studies.SEEDS_ONLY:  # published without per-image values: rebuilt from the seeds
        rebuilt = studies.seed_level_results(results["rows"], grid=results["grid"], provenance=results["provenance"])
        assert rebuilt["comparisons"] == results["comparisons"] and rebuilt["pooled"] == results["pooled"]


def test_the_earlier_study_is_titled_as_such_and_says_what_three_seeds_allow():
    if not _shipped_is_the_earlier_study():
        pytest.skip("the shipped study is the rerun with the protocol (tested below)")
    note = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    assert note.startswith("# The earlier study: its per-cell claims are withdrawn until the rerun\n")
    assert "With 3 seeds there is no 95 % interval" in note and "smallest two-sided p-value with 3 seeds is 0.250" in note
    assert "From seeds alone" in note
    # the rerun: the exact command and its runs, from docs/study/grid.toml
    assert "workbench experiment --grid docs/study/grid.toml --out results/study --cores 2" in note
    grid = parse_grid(__import__("tomllib").loads((STUDY / "grid.toml").read_text(encoding="utf-8")))
    assert grid["train"]["heads"] == ["pmi", "shuffled", "random-matched", "learned", "sigmoid-lowrank", "identity",
                                      "sigmoid"]
    assert len(grid["train"]["seeds"]) >= studies.PROTOCOL_SEEDS and grid["data"]["labels"] == [100, 500]
    runs = sum(len(cell.heads) * len(cell.seeds) for cell in expand_cells(grid))
    dims = len(grid["embedding"]["dim"])  # 5 heads at every k and 2 without k, 5 seeds, at 2 label counts
    assert runs == 2 * (dims * 5 + 2) * 5 and f"It trains {runs} runs in {2 * (dims + 1)} cells" in note


def test_the_shipped_rerun_is_the_grid_file_run_to_the_end_with_the_protocol():
    if _shipped_is_the_earlier_study():
        pytest.skip("the shipped study is the earlier one (tested above) until the rerun is published")
    study = studies.load_study(STUDY)
    grid = parse_grid(__import__("tomllib").loads((STUDY / "grid.toml").read_text(encoding="utf-8")))
    published = study["results"]["grid"]
    assert {key: published[key] for key in ("data", "embedding")} == {key: grid[key] for key in ("data", "embedding")}
    assert published["train"]["heads"] == grid["train"]["heads"] and published["train"]["seeds"] == grid["train"]["seeds"]
    runs = sum(len(cell.heads) * len(cell.seeds) for cell in expand_cells(grid))
    assert len(study["rows"]) == runs  # every run of every cell, none missing
    note = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    assert note.startswith("# The study: when does the PMI structure help?\n") and "withdrawn" not in note
    invocations = study["results"]["run"]["invocations"]
    assert f"of wall-clock time over {len(invocations)} invocations of `workbench experiment`" in note


def test_the_published_study_loads_through_the_front_door():
    import workbench as wb

    study = wb.load_experiment()
    shipped = studies.load_study(STUDY)
    assert study.folder == STUDY and len(study.rows()) == len(shipped["rows"])
    assert study.comparisons()["verdict"].tolist() == shipped["comparisons"]["verdict"].tolist()
    claims = study.claims()
    note = (ROOT / "docs" / "study.md").read_text(encoding="utf-8")
    assert claims and all(claim in note for claim in claims)


# ------------------------------------------------------------------------------------------ a synthetic study

HEADS = ["pmi", "shuffled", "random-matched", "learned", "sigmoid-lowrank", "sigmoid"]
#: True differences from pmi per (labels, k, head): pmi beats shuffled at k = 4 only, learned beats pmi at k = 16.
EFFECTS = {(20, 4, "shuffled"): -0.08, (20, 16, "learned"): 0.08, (40, 4, "shuffled"): -0.08, (40, 4, "sigmoid"): -0.1,
           (40, 16, "sigmoid"): -0.1}


def _synthetic_study(folder: Path, *, seeds=(0, 1, 2, 3, 4), tuned: bool = True) -> dict:
    raw = {"data": {"labels": [20, 40], "images": 500, "validation_fraction": 0.4},
           "embedding": {"dim": [4, 16]},
           "train": {"heads": HEADS, "seeds": list(seeds), "epochs": 8, "tune_lr": tuned}}
    grid = parse_grid(raw)
    if tuned:
        grid["train"]["patience"] = 4  # the stopping rule (also when the grid reader predates it)
    cells = expand_cells(grid)
    rng = np.random.default_rng(0)
    bases = {labels: rng.uniform(0.2, 0.6, size=200) for labels in (20, 40)}  # one validation set per data set
    values, rows, num_labels = {}, [], {}
    for cell in cells:
        labels = cell.data["labels"]
        num_labels[cell.name] = labels
        base = bases[labels]
        for head in cell.heads:
            for seed in cell.seeds:
                dim = cell.embedding["dim"] if cell.embedding else None
                shift = EFFECTS.get((labels, dim, head), EFFECTS.get((labels, 4, head), 0.0) if dim is None else 0.0)
                array = np.clip(base + shift + rng.normal(0, 0.004) + rng.normal(0, 0.01, size=base.shape), 0, 1)
                values.setdefault(cell.name, {})[(head, seed)] = array
                rows.append({"cell": cell.name, "head": head, "dim": dim, "dim_achieved": dim, "seed": seed,
                             "num_labels": labels, "num_images": 500, "epochs": 6, "learning_rate": 0.01,
                             # shuffled's last seed reached the cap without the stopping rule firing
                             "epochs_to_convergence": 3 if tuned and (head, seed) != ("shuffled", seeds[-1]) else None,
                             "map_at_100": float(array.mean()),
                             "map_at_100_clean": float(array.mean()) + 0.05, "ceiling_map_at_100": 0.9 if dim else None})
    results = {"grid": grid, "rows": rows, "histories": [], **grid_comparisons(cells, values, num_labels=num_labels),
               "per_label": [], "cells": {}, "provenance": {"seconds": 480.0}}
    folder.mkdir(parents=True, exist_ok=True)
    write_results(folder, results)
    return results


def test_a_synthetic_studys_claims_are_each_backed_by_a_comparisons_row(tmp_path):
    _synthetic_study(tmp_path / "study")
    study = studies.load_study(tmp_path / "study")
    note = report.study_markdown(study)
    verdicts = set(study["comparisons"]["verdict"])
    assert verdicts == {"better", "worse", "no difference"}, verdicts  # the study has something to claim
    assert claim_problems(note, study["comparisons"], study["results"]["pooled"]) == []
    sentences = [claim["text"] for claim in studies.claims(study["comparisons"])]
    assert all(sentence in note for sentence in sentences)
    assert "pmi is better than shuffled at 20 labels for k = 4 (Holm-adjusted p " in note
    assert "pmi is worse than learned at 20 labels for k = 16 (Holm-adjusted p " in note
    assert "pmi shows no difference from shuffled at 20 labels for k = 16 (Holm-adjusted p " in note
    # run with the protocol: titled as the study, intervals shown, no rerun section
    assert note.startswith("# The study: when does the PMI structure help?\n")
    assert "[95 % interval]" in note and "## The rerun" not in note and "withdrawn" not in note
    assert "MAP@100 on the clean labels" in note and "Epochs to convergence" in note
    # epochs to convergence over the runs the rule stopped, with the runs at the cap counted, and the heads without k
    assert "| 4 | 3.0 ± 0.0 | 3.0 ± 0.0 (1 of 5 at the cap) | 3.0 ± 0.0 | 3.0 ± 0.0 | 3.0 ± 0.0 |" in note
    assert "Without k: sigmoid 3.0 ± 0.0." in note
    # the wall-clock time: the experiment's invocations summed where they were published with it, else the provenance's
    assert "| time | 8 min (480 s) of training |" in note
    study["results"]["run"] = {"seconds": 5400.0, "invocations": [
        {"began": "2026-12-06T05:11:05Z", "seconds": 3600.0}, {"began": "2026-12-07T08:00:00Z", "seconds": 1800.0,
                                                               "git_commit": "345a124" + "0" * 33}]}
    timed = report.study_markdown(study)
    assert ("| time | **1 h 30 min** (1.50 h) of wall-clock time over 2 invocations of `workbench experiment` "
            "(`experiment.json`), 2026-12-06 to 2026-12-07; commit `345a124` (and earlier ones not recorded) |") in timed
    # the paper's +7 %: pmi − sigmoid relative to sigmoid at every k, its interval against +7 %
    question = studies.paper_question(study)
    assert len(question) == 2 and "of sigmoid's MAP@100" in question[1] and "+7 %" in question[1]


def test_the_runs_that_reached_the_cap_are_counted_with_how_much_their_hold_out_still_rose(tmp_path):
    _synthetic_study(tmp_path / "study")
    study = studies.load_study(tmp_path / "study")
    capped = study["rows"][study["rows"]["epochs_to_convergence"].isna()]
    assert len(capped) == 4  # shuffled's last seed in each of the 4 cells with k
    note = report.study_markdown(study)
    limit = (f"- 4 of {len(study['rows'])} runs reached the cap of 8 epochs before their stopping rule fired "
             f"(\"at the cap\" in the tables of epochs above): their values are those of the cap, not converged ones.")
    assert limit in note  # no histories: no rise to report
    # with histories: the best of the last `patience` (4) epochs against the best before them, per capped run
    curves = {0: [0.1, 0.2, 0.3, 0.30, 0.31, 0.30, 0.30, 0.30], 1: [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4, 0.45],
              2: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.52], 3: [0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.21, 0.2]}
    study["results"]["histories"] = [
        {"cell": row.cell, "head": row.head, "seed": int(row.seed),
         "history": [{"epoch": epoch + 1, "holdout_map_at_100": value} for epoch, value in enumerate(curves[index])]}
        for index, row in enumerate(capped.itertuples())]
    rises = [0.31 - 0.3, 0.45 - 0.4, 0.52 - 0.5, 0.21 - 0.2]  # brute force, by eye from the curves
    note = report.study_markdown(study)
    assert (f"over its last 4 epochs each one's best hold-out MAP@100 still rose, by a median of "
            f"{np.median(rises):.4f} (at most {max(rises):.4f}).") in note
    # the runs the rule stopped make no line
    study["rows"]["epochs_to_convergence"] = study["rows"]["epochs_to_convergence"].fillna(5)
    assert "before their stopping rule fired" not in report.study_markdown(study)


def test_a_run_whose_hold_out_collapsed_is_named_in_the_limits(tmp_path):
    _synthetic_study(tmp_path / "study")
    study = studies.load_study(tmp_path / "study")
    rows = study["rows"]
    steady = [0.1, 0.2, 0.3, 0.3, 0.31, 0.3]
    fallen_row = rows[rows["head"] == "pmi"].iloc[1]
    study["results"]["histories"] = [
        {"cell": row.cell, "head": row.head, "seed": int(row.seed),
         "history": [{"epoch": epoch + 1, "holdout_map_at_100": value} for epoch, value in enumerate(
             [0.1, 0.4, 0.05, 0.1, 0.15] if row.Index == fallen_row.name else steady)]}
        for row in rows.itertuples()]
    several = rows["num_labels"].nunique() > 1
    where = (f" at {int(fallen_row.num_labels)} labels" if several else "") + f" at k = {int(fallen_row.dim)}"
    line = (f"- 1 of {len(rows)} runs collapsed (the last hold-out MAP@100 below 0.5 of the run's best): pmi{where}, "
            f"seed {int(fallen_row.seed)} (hold-out MAP@100 0.400 at epoch 2, 0.150 at its last, epoch 5")
    assert line in report.study_markdown(study)
    # a last value at half the best or more is a run that settled lower, not a collapse
    study["results"]["histories"][int(np.flatnonzero(rows.index == fallen_row.name)[0])]["history"][-1][
        "holdout_map_at_100"] = 0.2
    assert "collapsed" not in report.study_markdown(study)


def test_the_rerun_estimate_scales_the_studys_own_pace(tmp_path):
    _synthetic_study(tmp_path / "study")
    study = studies.load_study(tmp_path / "study")
    estimate = studies.rerun_estimate(STUDY / "grid.toml", study)
    pace = 480 / (len(study["rows"]) * 6)  # 480 s for its runs of 6 epochs
    assert estimate["seconds_per_epoch"] == pytest.approx(pace)
    dims = len(estimate["grid"]["embedding"]["dim"])
    runs, tuning = 2 * (dims * 5 + 2) * 5, 2 * (dims * 5 + 2) * 3  # 3 rates a head and cell at least
    assert estimate["runs"] == runs and estimate["tuning_runs"] == tuning
    train = estimate["grid"]["train"]
    cap, tuning_cap = train["epochs"], train["tuning_epochs"] or train["epochs"]  # the grid file's
    assert estimate["epochs"] == cap and estimate["tuning_epochs"] == tuning_cap
    assert estimate["seconds_cap"] == pytest.approx((runs * cap + tuning * tuning_cap) * pace)
    assert estimate["seconds_study_epochs"] == pytest.approx((runs + tuning) * 6 * pace)  # both caps exceed 6


def test_a_study_short_of_the_protocol_is_titled_the_earlier_study(tmp_path):
    _synthetic_study(tmp_path / "study", seeds=(0, 1, 2), tuned=False)
    study = studies.load_study(tmp_path / "study")
    gaps = studies.protocol_gaps(study)
    assert any(gap.startswith("3 seeds") for gap in gaps) and any("not tuned" in gap for gap in gaps)
    assert not any(gap.startswith("no control") for gap in gaps)  # every control was trained
    note = report.study_markdown(study, rerun_grid=STUDY / "grid.toml")
    assert note.startswith("# The earlier study") and "## The rerun" in note
    assert set(study["comparisons"]["verdict"]) == {"no difference"}  # 3 seeds: the sign test cannot reach 0.05
    assert claim_problems(note, study["comparisons"], study["results"]["pooled"]) == []


def test_a_comparisons_csv_that_is_not_the_results_is_refused(tmp_path):
    _synthetic_study(tmp_path / "study")
    path = tmp_path / "study" / "comparisons.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], *lines[2:]]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="does not match"):
        studies.load_study(tmp_path / "study")


def test_the_readme_block_is_replaced_between_its_markers_only():
    text = f"before\n{report.README_BEGIN}\nold\n{report.README_END}\nafter\n"
    assert report.replace_block(text, "NEW") == "before\nNEW\nafter\n"
    with pytest.raises(ValueError, match="No study summary block"):
        report.replace_block("no markers", "NEW")


@pytest.mark.slow
def test_write_study_runs_as_a_script():
    completed = subprocess.run([sys.executable, str(STUDY / "write_study.py"), "--check"], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_a_p_value_that_underflowed_to_zero_reads_below_1e_300_and_the_checker_accepts_it():
    # At C = 1,870 some crossed-t p-values are below the smallest double; "p = 0.0e+00" would claim certainty.
    from workbench.experiments.comparisons import format_p

    assert [format_p(value) for value in (0.0, 3.7e-17, 0.0123, 1.0, None, float("nan"))] == \
        ["< 1e-300", "3.7e-17", "0.012", "1.000", "—", "—"]
    row = {"num_labels": 1870, "head": "pmi", "baseline": "learned", "seeds": 5, "difference": -0.1, "low": -0.11,
           "high": -0.09, "p_value": 0.0, "p_adjusted": 0.0, "verdict": "worse"}
    table = pd.DataFrame([{**row, "dim": 16}, {**row, "dim": 64, "p_adjusted": 4.3e-186}])
    pooled = {"pooled": [{"num_labels": 1870, "head": "pmi", "baseline": "learned", "verdict": "worse", "dims": [16, 64],
                          "p_adjusted": 0.0, "seed_pairs_won": 0, "seed_pairs": 10}]}
    sentences = [claim["text"] for claim in studies.claims(table)] + [claim["text"] for claim in studies.pooled_claims(pooled)]
    assert sentences == ["pmi is worse than learned at 1870 labels for k = 16, 64 (Holm-adjusted p ≤ 4.3e-186).",
                         "Pooled over k = 16, 64 at 1870 labels, pmi is worse than learned (Holm-adjusted p < 1e-300 "
                         "across the 1 pooled tests; 0 of 10 seed pairs favour pmi)."]
    assert claim_problems("\n".join(sentences), table, pooled["pooled"]) == []
    pooled["pooled"][0]["p_adjusted"] = 1e-200  # "< 1e-300" no longer matches the pooled test
    assert claim_problems("\n".join(sentences), table, pooled["pooled"]) != []
    table["p_adjusted"] = 0.0
    assert studies.claims(table)[0]["text"] == "pmi is worse than learned at 1870 labels for k = 16, 64 (Holm-adjusted p < 1e-300)."
