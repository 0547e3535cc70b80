"""Comparisons across a grid: which pairs, Holm-adjusted verdicts, pooled tests over k, and comparisons.csv."""

import csv
import json

import numpy as np
import pytest

from workbench.evaluation.statistics import holm_adjust, paired_difference
from workbench.experiments.comparisons import (
    COMPARISON_COLUMNS,
    comparison_pairs,
    comparisons_frame,
    comparisons_text,
    grid_comparisons,
)
from workbench.experiments.grid import Cell, expand_cells, parse_grid

SEEDS = (0, 1, 2, 3, 4)


def test_pairs_are_pmi_against_every_other_head_then_every_other_head_against_sigmoid():
    heads = ["pmi", "random", "shuffled", "learned", "identity", "sigmoid"]
    assert comparison_pairs(heads) == [("pmi", "random"), ("pmi", "shuffled"), ("pmi", "learned"), ("pmi", "identity"),
                                       ("pmi", "sigmoid"), ("random", "sigmoid"), ("shuffled", "sigmoid"),
                                       ("learned", "sigmoid"), ("identity", "sigmoid")]
    assert comparison_pairs(["random", "identity"]) == []
    assert comparison_pairs(["pmi", "a-new-head"]) == [("pmi", "a-new-head")]
    assert comparison_pairs(["a-new-head", "sigmoid"]) == [("a-new-head", "sigmoid")]


def _cells(dims=(4, 8), heads=("pmi", "shuffled", "random"), free=("identity", "sigmoid"), labels=20):
    data, train = {"labels": labels, "seed": 0}, {"epochs": 3}
    cells = [Cell(name=f"labels-{labels}_dim-{dim}", data=data, embedding={"dim": dim, "pmi": "zero"}, train=train,
                  heads=heads, seeds=SEEDS) for dim in dims]
    return cells + [Cell(name=f"labels-{labels}_no-embedding", data=data, embedding=None, train=train, heads=free,
                         seeds=SEEDS)]


def _values(cells, shifts, seed_shifts=None, images=40, random_state=0):
    """Per-image values: a common image difficulty, a head's shift, a seed's shift, a little noise."""
    rng = np.random.default_rng(random_state)
    base = rng.random(images) * 0.5
    values = {}
    for cell in cells:
        for head in cell.heads:
            for seed in cell.seeds:
                extra = (seed_shifts or {}).get(head, np.zeros(len(SEEDS)))[seed]
                values.setdefault(cell.name, {})[(head, seed)] = base + shifts[head] + extra + rng.normal(0, 0.001, images)
    return values


def test_every_setting_compares_its_pairs_holm_adjusts_across_the_grid_and_verdicts_follow_the_adjusted_p():
    cells = _cells()
    # random − sigmoid per seed: p ≈ 0.02 uncorrected (a paired t over five seeds), not after Holm across the grid
    close = np.array([0.02, 0.01, 0.03, 0.005, 0.015])
    values = _values(cells, {"pmi": 0.1, "shuffled": 0.0, "random": 0.0, "identity": 0.0, "sigmoid": 0.0},
                     seed_shifts={"random": close, "pmi": np.array([0.0, 0.002, -0.001, 0.001, 0.0]),
                                  "shuffled": np.array([0.003, -0.002, 0.001, -0.004, 0.002])})
    result = grid_comparisons(cells, values, num_labels={cell.name: 20 for cell in cells})
    comparisons = result["comparisons"]
    assert [(entry["dim"], entry["head"], entry["baseline"]) for entry in comparisons] == [
        (dim, head, baseline) for dim in (4, 8) for head, baseline in
        [("pmi", "shuffled"), ("pmi", "random"), ("pmi", "identity"), ("pmi", "sigmoid"), ("shuffled", "sigmoid"),
         ("random", "sigmoid")]] + [(None, "identity", "sigmoid")]
    assert {entry["baseline_cell"] for entry in comparisons if entry["baseline"] == "sigmoid"} == {"labels-20_no-embedding"}
    # each entry is paired_difference of the two heads' runs, and p_adjusted is Holm over all of them
    first = comparisons[1]
    reference = paired_difference([values["labels-20_dim-4"][("pmi", s)] for s in SEEDS],
                                  [values["labels-20_dim-4"][("random", s)] for s in SEEDS])
    assert first["difference"] == pytest.approx(reference["difference"]) and first["p_value"] == reference["p_value"]
    assert [entry["p_adjusted"] for entry in comparisons] == holm_adjust([entry["p_value"] for entry in comparisons])
    verdicts = {(entry["dim"], entry["head"], entry["baseline"]): entry["verdict"] for entry in comparisons}
    assert verdicts[4, "pmi", "random"] == verdicts[8, "pmi", "sigmoid"] == "better"
    assert verdicts[4, "shuffled", "sigmoid"] == verdicts[None, "identity", "sigmoid"] == "no difference"
    assert verdicts[4, "pmi", "shuffled"] == "better"
    random_sigmoid = next(entry for entry in comparisons if (entry["dim"], entry["head"]) == (4, "random"))
    from scipy import stats

    assert random_sigmoid["p_value"] == pytest.approx(stats.ttest_1samp(close, 0).pvalue, abs=0.002)  # noise aside
    assert random_sigmoid["p_value"] < 0.05 <= random_sigmoid["p_adjusted"] and random_sigmoid["verdict"] == "no difference"
    for entry in comparisons:
        significant = entry["p_adjusted"] < 0.05
        assert entry["verdict"] == ("no difference" if not significant else "better" if entry["difference"] > 0 else "worse")


def test_the_pooled_test_averages_each_seeds_difference_over_k():
    cells = _cells(dims=(4, 8, 16))
    values = _values(cells, {"pmi": 0.02, "shuffled": 0.0, "random": 0.0, "identity": 0.0, "sigmoid": 0.0},
                     seed_shifts={"pmi": np.array([0.01, -0.01, 0.0, 0.005, -0.005])})
    result = grid_comparisons(cells, values, num_labels={cell.name: 20 for cell in cells})
    pooled = {(entry["head"], entry["baseline"]): entry for entry in result["pooled"]}
    assert set(pooled) == {("pmi", "shuffled"), ("pmi", "random"), ("pmi", "identity"), ("pmi", "sigmoid"),
                           ("shuffled", "sigmoid"), ("random", "sigmoid")}, "identity − sigmoid has no k to pool over"
    entry = pooled["pmi", "random"]
    assert entry["dims"] == [4, 8, 16] and entry["seeds"] == list(SEEDS) and entry["seed_pairs"] == 15
    names = [cell.name for cell in cells[:3]]
    reference = paired_difference([np.mean([values[name][("pmi", s)] for name in names], axis=0) for s in SEEDS],
                                  [np.mean([values[name][("random", s)] for name in names], axis=0) for s in SEEDS])
    assert entry["difference"] == pytest.approx(reference["difference"]) and entry["p_value"] == reference["p_value"]
    assert entry["seed_pairs_won"] == sum(value > 0 for k in result["comparisons"] if (k["head"], k["baseline"]) ==
                                          ("pmi", "random") for value in k["seed_differences"])
    assert [item["p_adjusted"] for item in result["pooled"]] == holm_adjust([item["p_value"] for item in result["pooled"]])
    assert entry["verdict"] == "better"
    text = comparisons_text(result)
    assert "Pooled over k" in text and "15 of 15 seed pairs favour pmi" in text


def test_with_three_seeds_a_comparison_has_no_interval_and_says_so():
    cells = [Cell(name=cell.name, data=cell.data, embedding=cell.embedding, train=cell.train, heads=cell.heads,
                  seeds=SEEDS[:3]) for cell in _cells(dims=(4,))]
    values = _values(cells, {"pmi": 0.1, "shuffled": 0.0, "random": 0.0, "identity": 0.0, "sigmoid": 0.0})
    result = grid_comparisons(cells, values, num_labels={cell.name: 100 for cell in cells})
    entry = result["comparisons"][0]
    assert entry["low"] is None and entry["p_value"] == pytest.approx(0.25) and entry["verdict"] == "no difference"
    frame = comparisons_frame(result)
    assert np.isnan(frame.loc[0, "low"]) and frame.loc[0, "seeds"] == 3
    assert ("labels 100, k 4: pmi − shuffled = +0.100 (3 seeds: too few for a 95 % interval; the difference is positive "
            "in 3 of 3 seeds; sign test p = 0.250), Holm p = 1.000: no difference") in comparisons_text(result)


def _experiment_folder(tmp_path, *, images=30):
    """A finished grid written as the cells' folders would be: results.json and each run's image_ap.npz."""
    from workbench._io import atomic_save_npz

    grid = parse_grid({"data": {"labels": 20}, "embedding": {"dim": [4, 8]},
                       "train": {"heads": ["pmi", "random", "identity", "sigmoid"], "seeds": list(SEEDS), "epochs": 3}})
    cells = expand_cells(grid)
    rng = np.random.default_rng(1)
    base = rng.random(images) * 0.5
    shifts = {"pmi": 0.15, "random": 0.0, "identity": 0.01, "sigmoid": 0.0}
    for cell in cells:
        folder = tmp_path / "cells" / cell.name
        runs = []
        for head in cell.heads:
            for seed in SEEDS:
                image_ap = np.clip(base + shifts[head] + rng.normal(0, 0.02, (3, images)), 0, 1)
                atomic_save_npz(folder / "runs" / f"{head}-seed{seed}" / "image_ap.npz", image_ap=image_ap)
                runs.append({"head": head, "seed": seed, "history": [
                    {"epoch": e + 1, "map_at_100": float(image_ap[e].mean()), "macro_ap": 0.1, "seconds": 1.0}
                    for e in range(3)]})
        (folder / "results.json").write_text(json.dumps({"config": {"num_labels": 20, "num_images": 200}, "runs": runs}))
    return grid, cells


def test_an_experiment_writes_comparisons_csv_beside_results_csv_in_its_layout(tmp_path):
    from workbench.experiments.results import collect_results, results_table, write_results
    from workbench.results import Experiment

    grid, cells = _experiment_folder(tmp_path)
    results = collect_results(tmp_path, cells, grid=grid)
    write_results(tmp_path, results)
    with open(tmp_path / "comparisons.csv", newline="") as handle:
        lines = list(csv.reader(handle))
    assert tuple(lines[0]) == COMPARISON_COLUMNS == ("num_labels", "dim", "head", "baseline", "seeds", "difference", "low",
                                                     "high", "p_value", "p_adjusted", "verdict")
    body = [dict(zip(lines[0], line)) for line in lines[1:]]
    assert [(row["dim"], row["head"], row["baseline"]) for row in body] == [
        ("4", "pmi", "random"), ("4", "pmi", "identity"), ("4", "pmi", "sigmoid"), ("4", "random", "sigmoid"),
        ("8", "pmi", "random"), ("8", "pmi", "identity"), ("8", "pmi", "sigmoid"), ("8", "random", "sigmoid"),
        ("", "identity", "sigmoid")]
    assert {row["num_labels"] for row in body} == {"20"} and {row["seeds"] for row in body} == {"5"}
    assert {row["verdict"] for row in body} <= {"better", "worse", "no difference"}
    assert [float(row["p_adjusted"]) for row in body] == pytest.approx(holm_adjust([float(row["p_value"]) for row in body]))
    assert all(float(row["low"]) <= float(row["difference"]) <= float(row["high"]) for row in body)
    pmi_random = body[0]
    assert pmi_random["verdict"] == "better" and float(pmi_random["difference"]) == pytest.approx(0.15, abs=0.01)
    assert body[3]["verdict"] == "no difference"
    # the same in Python, and in the text table
    frame = Experiment(json.loads((tmp_path / "results.json").read_text()), tmp_path).comparisons()
    assert list(frame.columns) == list(COMPARISON_COLUMNS) and len(frame) == 9
    assert frame["p_adjusted"].tolist() == pytest.approx([float(row["p_adjusted"]) for row in body])
    assert np.isnan(frame.loc[8, "dim"]) and frame.loc[0, "verdict"] == "better"
    text = results_table(results)
    assert "verdict by the Holm-adjusted p across the grid's 9 comparisons < 0.05" in text
    assert "labels 20, k 4: pmi − random = +0.1" in text and "(crossed-t over 5 seeds × 30 images)" in text
    assert "labels 20, no embedding: identity − sigmoid" in text


def test_results_written_before_comparisons_say_how_to_get_them():
    from workbench.experiments.results import results_table

    with pytest.raises(ValueError, match="run 'workbench experiment' on the same grid and folder again"):
        comparisons_frame({"rows": [], "paired": []})
    assert results_table({"rows": [], "paired": [{"cell": "x"}]}).splitlines()[-1].startswith("(paired tests of an older")
