"""Tables as pandas frames (numbers as floats) and their text (``DataFrame.to_string``): results, calibration, ceiling."""

import math

import numpy as np
import pandas as pd
import pytest

from workbench._tables import text_table
from workbench.evaluation.calibration import OPERATING_POINTS, calibration_frame, calibration_table
from workbench.evaluation.ceiling import ceiling_frame, ceiling_table
from workbench.experiments.results import (
    comparison_frame,
    comparison_table,
    results_frame,
    results_table,
    statistics_frame,
    statistics_table,
)


def test_text_table_aligns_text_left_numbers_right_and_shows_missing_values():
    frame = pd.DataFrame({"head": ["pmi", "sigmoid"], "value": [0.41234, float("nan")], "seeds": [3, 10]})
    assert text_table(frame, digits=2, indent="  ").splitlines() == [
        "  head     value  seeds",
        "  -------  -----  -----",
        "  pmi       0.41      3",
        "  sigmoid      —     10",
    ]
    assert text_table(frame.iloc[:0]).splitlines() == ["head  value  seeds", "----  -----  -----"]


def _comparison():
    runs = []
    for head, curves in {"pmi": [[0.1, 0.5], [0.2, 0.7]], "sigmoid": [[0.3, 0.4]], "random": [[0.1, 0.2]]}.items():
        for seed, curve in enumerate(curves):
            runs.append({"head": head, "seed": seed, "history": [{"epoch": e + 1, "map_at_100": v} for e, v in enumerate(curve)]})
    return {"config": {}, "runs": runs}


def test_comparison_frame_has_one_row_per_head_of_floats_and_the_table_is_its_text():
    frame = comparison_frame(_comparison())
    assert list(frame.columns) == ["head", "final_mean", "final_std", "seeds", "epochs_to_reference", "epochs_to_convergence",
                                   "converged"]
    assert frame["epochs_to_convergence"].isna().all() and list(frame["converged"]) == [0, 0, 0]  # no stopping rule
    assert list(frame["head"]) == ["pmi", "sigmoid", "random"]
    pmi = frame.set_index("head").loc["pmi"]
    assert pmi["final_mean"] == pytest.approx(np.mean([0.3, 0.45])) and pmi["seeds"] == 2
    assert pmi["epochs_to_reference"] == 2.0 and math.isnan(frame.set_index("head").loc["random", "epochs_to_reference"])
    assert frame["final_mean"].dtype == float and frame["epochs_to_reference"].dtype == float
    lines = comparison_table(_comparison()).splitlines()
    assert "sigmoid's last MAP@100 (0.4000)" in lines[0] and set(lines[1]) == {"-", " "}
    assert lines[2].startswith("pmi ") and "0.3750 ± 0.1061" in lines[2] and lines[2].endswith(" 2")
    assert lines[4].startswith("random ") and lines[4].endswith("—")


def test_statistics_frame_has_one_row_per_run_and_the_table_ends_with_the_paired_test():
    statistics = {"runs": [{"head": "pmi", "seed": 0, "epochs": 4, "map_at_100": 0.5, "low": 0.4, "high": 0.6, "macro_ap": 0.3},
                           {"head": "random", "seed": 0, "epochs": 4, "map_at_100": 0.2, "low": None, "high": None,
                            "macro_ap": None}],
                  "paired": {"first": "pmi", "second": "random", "difference": 0.3, "low": 0.1, "high": 0.5, "num_seeds": 5,
                             "method": "crossed-t", "p_value": 0.004, "note": None, "verdict": "better"}}
    frame = statistics_frame(statistics)
    assert list(frame.columns) == ["head", "seed", "epochs", "map_at_100", "map_at_100_low", "map_at_100_high", "macro_ap"]
    assert frame.loc[0, "map_at_100_low"] == 0.4 and math.isnan(frame.loc[1, "map_at_100_low"])
    lines = statistics_table(statistics).splitlines()
    assert "[0.400, 0.600]" in lines[2] and lines[3].split()[-1] == "—"
    assert lines[-1] == ("pmi − random = +0.300, 95% interval [+0.100, +0.500] (crossed-t: seeds and images as random "
                         "factors) over 5 seeds, p = 0.004: pmi better than random")
    statistics["paired"].update(low=None, high=None, method="sign test", p_value=0.25, verdict="no difference",
                                note="3 seeds: too few for a 95 % interval; the difference is positive in 3 of 3 seeds")
    assert statistics_table(statistics).splitlines()[-1] == (
        "pmi − random = +0.300 (3 seeds: too few for a 95 % interval; the difference is positive in 3 of 3 seeds; "
        "sign test p = 0.250): no difference")


def test_results_frame_has_one_row_per_cell_and_head():
    row = {"ceiling_map_at_100": 0.9, "macro_ap": 0.2, "map_at_100_low": 0.4, "map_at_100_high": 0.6}
    results = {"rows": [{**row, "cell": "k4", "head": "pmi", "map_at_100": 0.5},
                        {**row, "cell": "k4", "head": "pmi", "map_at_100": 0.7, "map_at_100_low": 0.6, "map_at_100_high": 0.8},
                        {"cell": "k4", "head": "sigmoid", "map_at_100": 0.6, "map_at_100_low": None, "map_at_100_high": None,
                         "ceiling_map_at_100": None, "macro_ap": None}],
               "comparisons": [{"cell": "k4", "num_labels": 20, "dim": 4, "head": "pmi", "baseline": "sigmoid",
                                "difference": 0.1, "low": -0.1, "high": 0.3, "method": "crossed-t", "num_seeds": 5,
                                "num_images": 40, "p_value": 0.02, "p_adjusted": 0.06, "verdict": "no difference",
                                "note": None}]}
    frame = results_frame(results)
    assert list(frame[["cell", "head", "seeds"]].itertuples(index=False, name=None)) == [("k4", "pmi", 2), ("k4", "sigmoid", 1)]
    assert frame.loc[0, "map_at_100_mean"] == pytest.approx(0.6) and frame.loc[0, "map_at_100_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert frame.loc[0, "map_at_100_low"] == pytest.approx(0.5) and math.isnan(frame.loc[1, "ceiling_map_at_100"])
    text = results_table(results)
    assert "0.600 ± 0.141" in text and "[0.500, 0.700]" in text
    assert text.splitlines()[-1] == ("  labels 20, k 4: pmi − sigmoid = +0.100 [-0.100, +0.300] (crossed-t over 5 seeds × "
                                     "40 images), p = 0.020, Holm p = 0.060: no difference"), "the verdict follows Holm's p"


def test_calibration_frame_has_one_row_per_decoder_and_operating_point():
    metrics = {"micro_f1": 0.5, "macro_f1": 0.4, "micro_precision": 0.6, "micro_recall": 0.45, "exact_set_accuracy": 0.2,
               "count_mae": 0.8}
    part = {point: dict(metrics) for point in OPERATING_POINTS}
    part["per_label_thresholds"]["macro_f1"] = None  # undefined there
    entry = {"fitted": {"threshold_micro_f1": 0.31, "threshold_macro_f1": 0.25, "per_label_thresholds": [0.3, 0.2],
                        "top_n": 2},
             "calibration": part, "test": {**part, "map_at_100": 0.7}}
    report = {"decoders": {"cosine": entry, "nnls": entry}, "calibration_images": ["a"] * 5, "test_images": ["b"] * 4,
              "best": {"decoder": "nnls", "operating_point": "top_n"}}
    frame = calibration_frame(report)
    assert len(frame) == 2 * len(OPERATING_POINTS) and list(frame["operating_point"][:4]) == list(OPERATING_POINTS)
    assert frame.loc[0, "threshold"] == 0.31 and math.isnan(frame.loc[0, "top_n"]) and frame.loc[3, "top_n"] == 2.0
    assert math.isnan(frame.loc[2, "macro_f1"]) and frame["map_at_100"].eq(0.7).all()
    lines = calibration_table(report).splitlines()
    assert lines[0] == "calibrated on 5 validation images, measured on 4 others:"
    assert ">= 0.310" in lines[3] and "one per label" in lines[5] and "top 2" in lines[6]
    assert lines[-1] == "best on the calibration images: nnls at top_n"


def test_ceiling_frame_has_one_row_per_embedding_and_k():
    report = {"config": {"decoder": "cosine", "num_validation_images_with_labels": 40},
              "rows": [{"embedding": "pmi", "dim": 4, "dim_achieved": 3, "map_at_100": 0.8, "macro_ap": None},
                       {"embedding": "identity", "dim": 6, "dim_achieved": 6, "map_at_100": 1.0, "macro_ap": 1.0}]}
    frame = ceiling_frame(report)
    assert list(frame.columns) == ["embedding", "dim", "dim_achieved", "map_at_100", "macro_ap"]
    assert frame.loc[0, "dim_achieved"] == 3 and math.isnan(frame.loc[0, "macro_ap"])
    lines = ceiling_table(report).splitlines()
    assert lines[0].split() == ["embedding", "k", "k", "achieved", "MAP@100", "macro", "AP"]
    assert lines[2].split() == ["pmi", "4", "3", "0.800", "—"] and lines[-1] == "decoder cosine, 40 validation images"
