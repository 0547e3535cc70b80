"""Fair, converged heads: the schedule and stopping rule on a training hold-out, tuning that extends its grid, convergence and equal-time results."""

import csv
import json
import math
from dataclasses import replace

import numpy as np
import pytest

from workbench.experiments.grid import expand_cells, parse_grid
from workbench.experiments.results import (
    RESULT_COLUMNS,
    collect_results,
    comparison_frame,
    comparison_table,
    equal_time_frame,
    write_results,
)
from workbench.learning.config import DEFAULT_LEARNING_RATES, TrainConfig
from workbench.learning.stopping import PlateauRule


# ---------------------------------------------------------------------------------
# the rule (no Keras)
# ---------------------------------------------------------------------------------
def test_the_rule_reduces_the_rate_on_a_plateau_then_stops_and_counts_from_its_best_epoch():
    rule = PlateauRule(learning_rate=0.01, patience=3, lr_patience=2, lr_factor=0.5, min_delta=0.01)
    values = [0.10, 0.20, 0.205, 0.19, 0.30, 0.30, 0.29, 0.305]
    actions = [rule.update(epoch, value) for epoch, value in enumerate(values, start=1)]
    # 0.205 and 0.19 do not beat 0.20 by more than 0.01: reduce after 2 flat epochs; 0.30 improves;
    # 0.30, 0.29, then 0.305 (not > 0.30 + 0.01): reduce after 2, stop after 3
    assert actions == [None, None, None, "reduce", None, None, "reduce", "stop"]
    assert rule.learning_rate == pytest.approx(0.01 * 0.5 * 0.5) and rule.reductions == [4, 7]
    assert (rule.best, rule.best_epoch, rule.stopped_epoch, rule.epochs_to_convergence) == (0.30, 5, 8, 5)


def test_the_rule_state_survives_a_round_trip_and_decides_as_the_uninterrupted_one():
    values = [0.1, 0.2, 0.2, None, 0.25, float("nan"), 0.25, 0.25]
    whole = PlateauRule(learning_rate=1e-2, patience=3, lr_patience=1, lr_factor=1 / 3)
    expected = [whole.update(epoch, value) for epoch, value in enumerate(values, start=1)]
    part = PlateauRule(learning_rate=1e-2, patience=3, lr_patience=1, lr_factor=1 / 3)
    actions = [part.update(epoch, value) for epoch, value in enumerate(values[:4], start=1)]
    resumed = PlateauRule.from_dict(json.loads(json.dumps(part.to_dict())))
    actions += [resumed.update(epoch, value) for epoch, value in enumerate(values[4:], start=5)]
    assert actions == expected and resumed.to_dict() == whole.to_dict()
    # None and NaN never improve; each flat epoch after a reduction reduces again (lr_patience 1)
    assert expected == [None, None, "reduce", "reduce", None, "reduce", "reduce", "stop"]
    assert whole.epochs_to_convergence == 5 and whole.stopped_epoch == 8 and whole.reductions == [3, 4, 6, 7]


def test_a_run_that_reaches_its_cap_has_not_converged():
    rule = PlateauRule(learning_rate=1e-2, patience=2)
    for epoch, value in enumerate([0.1, 0.2, 0.3], start=1):
        rule.update(epoch, value)
    assert rule.stopped_epoch is None and rule.epochs_to_convergence is None and rule.best_epoch == 3


def test_train_config_checks_the_schedule_and_stopping_settings():
    assert not TrainConfig().uses_holdout and TrainConfig(patience=3).uses_holdout and TrainConfig(lr_patience=1).uses_holdout
    for settings, message in [({"patience": -1}, "patience"), ({"lr_factor": 1.5}, "lr_factor"),
                              ({"min_delta": -0.1}, "min_delta"), ({"holdout_fraction": 0.0}, "holdout_fraction")]:
        with pytest.raises(ValueError, match=message):
            TrainConfig(**settings)


# ---------------------------------------------------------------------------------
# training with the rule: a stall stops it, a kill resumes it with the same state
# ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_stalled_run_stops_before_max_epochs_and_a_killed_one_resumes_with_the_same_stopping_state(tmp_path):
    keras = pytest.importorskip("keras")
    from tests.test_training import coloured_squares, config, embedding_for
    from workbench.learning.training import train

    dataset = coloured_squares(48)
    embedding = embedding_for(dataset.vocabulary)
    # min_delta 1: no epoch can improve on the first (MAP ≤ 1), so the hold-out metric stalls by construction
    stalled = config(epochs=10, patience=2, lr_patience=1, min_delta=1.0)
    whole = train(dataset, config=stalled, out_dir=tmp_path / "whole", embedding=embedding, verbose=0)
    meta = json.loads((tmp_path / "whole" / "config.json").read_text())
    assert len(whole.history) == 3 < stalled.epochs and meta["status"] == "complete" and meta["epochs_completed"] == 3
    assert meta["stopping"]["stopped_epoch"] == 3 and meta["stopping"]["epochs_to_convergence"] == 1
    assert [record["learning_rate"] for record in whole.history] == pytest.approx([3e-3, 3e-3, 1e-3])
    assert all(0 <= record["holdout_map_at_100"] <= 1 for record in whole.history)
    # the hold-out is a part of the training split: the run trained on the rest
    train_split, validation = dataset.split(validation_fraction=0.25, random_state=0)
    assert meta["data"]["num_train"] + meta["data"]["num_holdout"] == len(train_split)
    assert meta["data"]["num_validation"] == len(validation) and meta["data"]["holdout"] == "training split"

    class Kill(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt  # killed during epoch 3, after the rate was reduced

    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        train(dataset, config=stalled, out_dir=out, embedding=embedding, callbacks=[Kill()], verbose=0)
    state = json.loads((out / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2 and state["stopping"]["reductions"] == [2] and state["stopping"]["wait"] == 1
    assert state["stopping"]["learning_rate"] == pytest.approx(1e-3) and state["stopping"]["stopped_epoch"] is None
    lines = []
    resumed = train(dataset, config=stalled, out_dir=out, embedding=embedding, print_function=lines.append)
    assert lines[0].startswith(f"Resuming {out} after epoch 2 of 10")
    assert float(keras.ops.convert_to_numpy(resumed.model.optimizer.learning_rate)) == pytest.approx(1e-3)
    finished = json.loads((out / "config.json").read_text())["stopping"]
    assert {key: value for key, value in finished.items() if key != "best"} == \
        {key: value for key, value in meta["stopping"].items() if key != "best"}
    assert [record["learning_rate"] for record in resumed.history] == pytest.approx([3e-3, 3e-3, 1e-3])
    # a stopped run stays stopped, even when asked for more epochs
    again = []
    train(dataset, config=config(epochs=12, patience=2, lr_patience=1, min_delta=1.0), out_dir=out, embedding=embedding,
          print_function=again.append)
    assert again == [f"{out} stopped after epoch 3 (hold-out flat for 2 epochs); nothing to train."]


def test_the_hold_out_value_the_rule_watches_is_the_map_of_the_model_on_the_hold_out(tmp_path):
    """The rule's ``holdout_map_at_100`` against a brute-force MAP@100 of the final model on the held-out images."""
    pytest.importorskip("keras")
    from tests.test_training import coloured_squares, config, embedding_for
    from workbench.evaluation.metrics import mean_average_precision
    from workbench.learning.stopping import holdout_split
    from workbench.learning.training import train
    from workbench.method.decoding import LabelScorer

    dataset = coloured_squares(64)
    embedding = embedding_for(dataset.vocabulary)
    settings = config(epochs=2, patience=5, holdout_fraction=0.3)
    run = train(dataset, config=settings, out_dir=tmp_path / "run", embedding=embedding, verbose=0)
    train_split, _ = dataset.split(validation_fraction=settings.validation_fraction, random_state=settings.split_random_state)
    _, holdout = holdout_split(train_split, fraction=0.3, split_random_state=settings.split_random_state)
    scores = LabelScorer(run.embedding.vectors)(run.model.predict(holdout.images, verbose=0))
    assert run.history[-1]["holdout_map_at_100"] == pytest.approx(mean_average_precision(scores, holdout.labels), abs=1e-6)
    assert all(record["holdout_eval_seconds"] >= 0 for record in run.history)
    # the reported validation is measured in full; the hold-out by MAP@100 alone
    assert {"macro_ap", "precision_at_5"} <= set(run.history[-1])


def test_without_a_rule_nothing_is_held_out(tmp_path):
    pytest.importorskip("keras")
    from tests.test_training import coloured_squares, config
    from workbench.learning.training import train

    run = train(coloured_squares(32), config=config(head="sigmoid", epochs=1), out_dir=tmp_path / "run", verbose=0)
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert meta["data"]["num_holdout"] == 0 and meta["data"]["holdout"] is None and "stopping" not in meta
    assert "holdout_map_at_100" not in run.history[0] and "learning_rate" not in run.history[0]


def test_the_command_line_and_the_front_door_take_the_stopping_rule(tmp_path, capsys):
    pytest.importorskip("keras")
    import workbench as wb
    from tests.test_training import coloured_squares
    from workbench.cli import main
    from workbench.data.scenes import write_scenes

    dataset = coloured_squares(40)
    write_scenes(dataset, tmp_path / "data")
    tiny = ["--image-size", "16", "--width", "4", "--depth", "2", "--batch-size", "8", "--epochs", "2"]
    assert main(["train", "--data", str(tmp_path / "data"), "--head", "sigmoid", *tiny, "--patience", "1",
                 "--lr-patience", "1", "--holdout-fraction", "0.2", "--out", str(tmp_path / "run")]) == 0
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (meta["train"]["patience"], meta["train"]["lr_patience"], meta["train"]["holdout_fraction"]) == (1, 1, 0.2)
    assert meta["data"]["num_holdout"] > 0 and meta["stopping"]["patience"] == 1
    assert main(["compare", "--data", str(tmp_path / "data"), "--heads", "sigmoid", "--seeds", "1", *tiny,
                 "--patience", "1", "--out", str(tmp_path / "comparison")]) == 0
    compared = json.loads((tmp_path / "comparison" / "results.json").read_text())
    assert compared["config"]["stopping"]["patience"] == 1 and compared["runs"][0]["stopping"] is not None
    run = wb.train(dataset, head="sigmoid", epochs=2, batch_size=8, model={"image_size": 16, "width": 4, "depth": 2},
                   stopping={"patience": 1, "holdout_fraction": 0.2})
    assert run.config.patience == 1 and "holdout_map_at_100" in run.history[0]
    with pytest.raises(ValueError, match="holdout_fraction"):
        wb.train(dataset, head="sigmoid", epochs=1, stopping={"patience": 1, "holdout_fraction": 2.0})
    capsys.readouterr()


# ---------------------------------------------------------------------------------
# tuning: a fake trainer, so no model is trained
# ---------------------------------------------------------------------------------
def _tiny_cell(heads, **train):
    grid = parse_grid({"data": {"labels": 6, "images": 48, "size": 16, "validation_fraction": 0.25},
                       "embedding": {"dim": 2},
                       "train": {"heads": heads, "seeds": [0], "epochs": 6, "image_size": 16, "width": 4, "depth": 2,
                                 **train}})
    return expand_cells(grid)


class _FakeTrainer:
    """Stands in for ``learning.training.train``: records the images it is given, scores a rate by ``curve``."""

    def __init__(self, curve):
        self.curve = curve
        self.calls = []

    def __call__(self, dataset, *, config, out_dir, validation=None, monitor_validation=False, **ignored):
        self.calls.append({"head": config.head, "rate": config.learning_rate, "train": set(dataset.image_paths),
                           "validation": set(validation.image_paths), "monitor_validation": monitor_validation,
                           "patience": config.patience, "epochs": config.epochs})
        out_dir.mkdir(parents=True, exist_ok=True)
        value = self.curve(config.head, config.learning_rate)
        (out_dir / "config.json").write_text(json.dumps({"stopping": {"epochs_to_convergence": 2}}))

        class Run:
            history = [{"epoch": epoch, "map_at_100": value} for epoch in (1, 2, 3)]

        return Run()


def _tune(monkeypatch, tmp_path, cell, curve):
    from workbench.experiments.experiment import _cell_dataset, tune_learning_rates
    from workbench.learning.config import ModelConfig

    fake = _FakeTrainer(curve)
    monkeypatch.setattr("workbench.learning.training.train", fake)
    dataset = _cell_dataset(cell)
    train_split, validation_split = dataset.split(validation_fraction=cell.data["validation_fraction"], random_state=0)
    rates, table = tune_learning_rates(train_split, cell=cell, folder=tmp_path / "tuning",
                                       model=ModelConfig(image_size=16, width=4, depth=2),
                                       embedding_options=cell.embedding_options(), print_function=lambda line: None)
    return rates, table, fake, train_split, validation_split


def test_tuning_extends_the_grid_while_the_best_rate_is_on_its_edge_and_never_sees_validation_images(monkeypatch, tmp_path):
    from workbench.experiments.experiment import TUNING_STEP

    cell = next(cell for cell in _tiny_cell(["pmi", "sigmoid"]) if cell.embedding is not None)  # pmi and its k
    best_pmi = DEFAULT_LEARNING_RATES["pmi"] * TUNING_STEP ** 2  # two steps above the default: beyond the first grid

    def curve(head, rate):  # peaked in log(rate) at best_pmi
        return 0.5 - 0.1 * abs(math.log(rate / best_pmi, TUNING_STEP))

    rates, table, fake, train_split, validation_split = _tune(monkeypatch, tmp_path, cell, curve)
    tried = [entry["learning_rate"] for entry in table]
    default = DEFAULT_LEARNING_RATES["pmi"]
    # ×1/3, 1, 3 (best on the edge), ×9 (still), ×27 (worse): the best, ×9, is interior
    assert tried == pytest.approx([default / 3, default, default * 3, default * 9, default * 27], rel=1e-2)
    assert rates["pmi"] == pytest.approx(best_pmi, rel=1e-2)
    assert [entry["chosen"] for entry in table] == [False, False, False, True, False] and not any(e["capped"] for e in table)
    assert [entry["holdout_map_at_100"] for entry in table] == pytest.approx([curve("pmi", rate) for rate in tried])
    # every tuning run trained on the training split's fit part and was scored on its hold-out, never on validation
    validation_images = set(validation_split.image_paths)
    for call in fake.calls:
        assert call["train"] | call["validation"] <= set(train_split.image_paths)
        assert not call["train"] & validation_images and not call["validation"] & validation_images
        assert not call["train"] & call["validation"] and call["monitor_validation"]
        assert call["patience"] == cell.train["patience"] and call["epochs"] == cell.train["epochs"]
    assert len(fake.calls[0]["validation"]) == round(0.15 * len(train_split))  # the cell's holdout_fraction
    with open(tmp_path / "tuning" / "trail.csv", newline="") as handle:
        trail = list(csv.DictReader(handle))
    assert [float(row["learning_rate"]) for row in trail] == pytest.approx(tried)
    assert [row["chosen"] for row in trail] == ["False", "False", "False", "True", "False"]


def test_tuning_stops_at_its_cap_and_says_so_and_keeps_an_interior_best(monkeypatch, tmp_path):
    from workbench.experiments.experiment import TUNING_MAX_STEPS, TUNING_STEP

    cell = next(cell for cell in _tiny_cell(["identity", "sigmoid"]) if cell.embedding is None)

    def curve(head, rate):  # identity: better the smaller the rate (never interior); sigmoid: best at its default
        if head == "identity":
            return 0.5 - 0.01 * math.log(rate)
        return 0.5 - 0.1 * abs(math.log(rate / DEFAULT_LEARNING_RATES["sigmoid"]))

    rates, table, fake, _, _ = _tune(monkeypatch, tmp_path, cell, curve)
    identity = [entry for entry in table if entry["head"] == "identity"]
    default = DEFAULT_LEARNING_RATES["identity"]
    expected = [default / 3, default, default * 3] + [default / TUNING_STEP ** step for step in range(2, TUNING_MAX_STEPS + 1)]
    assert [entry["learning_rate"] for entry in identity] == pytest.approx(expected, rel=1e-2)
    assert identity[-1]["capped"] and identity[-1]["chosen"] and rates["identity"] == identity[-1]["learning_rate"]
    sigmoid = [entry for entry in table if entry["head"] == "sigmoid"]
    assert len(sigmoid) == 3 and rates["sigmoid"] == pytest.approx(DEFAULT_LEARNING_RATES["sigmoid"])


def test_a_cell_tunes_on_its_training_split_only(monkeypatch, tmp_path):
    pytest.importorskip("keras")
    from workbench.experiments import experiment

    cell = _tiny_cell(["sigmoid"])[0]
    seen = {}

    def spy(train_set, **settings):
        seen["images"] = set(train_set.image_paths)
        raise RuntimeError("stop here")

    monkeypatch.setattr(experiment, "tune_learning_rates", spy)
    report = experiment.run_cell(cell.settings(), str(tmp_path))
    assert report["status"] == "failed" and report["error"] == "stop here"
    _, validation = experiment._cell_dataset(cell).split(validation_fraction=0.25, random_state=0)
    assert seen["images"] and not seen["images"] & set(validation.image_paths)


def test_grids_tune_and_stop_by_default_and_these_settings_are_not_axes():
    grid = parse_grid({})
    assert grid["train"]["tune_lr"] is True
    assert (grid["train"]["patience"], grid["train"]["lr_patience"], grid["train"]["holdout_fraction"]) == (6, 2, 0.15)
    cell = expand_cells(parse_grid({"train": {"patience": 6, "lr_patience": 0}}))[0]
    assert cell.stopping() == {"patience": 6, "lr_patience": 0, "holdout_fraction": 0.15}
    with pytest.raises(ValueError, match=r"\[train\] patience takes one value"):
        parse_grid({"train": {"patience": [2, 4]}})
    with pytest.raises(ValueError, match=r"\[train\] holdout_fraction"):
        parse_grid({"train": {"holdout_fraction": 1.5}})


# ---------------------------------------------------------------------------------
# results: the tuned rate, epochs to convergence, equal time
# ---------------------------------------------------------------------------------
def test_results_csv_carries_the_tuned_rate_and_epochs_to_convergence_and_keeps_stopped_runs(tmp_path):
    cell = replace(next(cell for cell in _tiny_cell(["pmi"]) if cell.embedding is not None), seeds=(0, 1, 2))
    folder = tmp_path / "cells" / cell.name
    folder.mkdir(parents=True)
    (folder / "cell.json").write_text(json.dumps({**cell.settings(), "status": "complete",
                                                  "learning_rates": {"pmi": 0.09}}))

    def run(seed, values, stopping):
        return {"head": "pmi", "seed": seed, "stopping": stopping,
                "history": [{"epoch": e + 1, "map_at_100": v, "macro_ap": v, "seconds": 1.0} for e, v in enumerate(values)]}

    runs = [run(0, [0.1, 0.3, 0.4, 0.4], {"stopped_epoch": 4, "epochs_to_convergence": 2}),  # stopped before the cap of 6
            run(1, [0.1, 0.2, 0.3, 0.35, 0.4, 0.45], {"stopped_epoch": None, "epochs_to_convergence": None}),  # reached it
            run(2, [0.1, 0.2], {"stopped_epoch": None, "epochs_to_convergence": None})]  # unfinished: left out
    (folder / "results.json").write_text(json.dumps({"config": {"learning_rates": {"pmi": 0.01}, "num_labels": 6},
                                                     "runs": runs}))
    write_results(tmp_path, collect_results(tmp_path, [cell]))
    assert "epochs_to_convergence" in RESULT_COLUMNS and "learning_rate" in RESULT_COLUMNS
    with open(tmp_path / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["seed"], row["epochs"], row["epochs_to_convergence"], row["learning_rate"]) for row in rows] == [
        ("0", "4", "2", "0.09"), ("1", "6", "", "0.09")]
    assert float(rows[0]["map_at_100"]) == pytest.approx((0.3 + 0.4 + 0.4) / 3)


def _comparison(runs):
    return {"config": {}, "runs": [
        {"head": head, "seed": seed, "stopping": stopping,
         "history": [{"epoch": e + 1, "map_at_100": v, "seconds": s} for e, (v, s) in enumerate(curve)]}
        for head, seed, curve, stopping in runs]}


def test_the_comparison_frame_reports_epochs_to_convergence_beside_the_final_value():
    results = _comparison([
        ("pmi", 0, [(0.2, 1), (0.5, 1), (0.5, 1)], {"stopped_epoch": 3, "epochs_to_convergence": 2}),
        ("pmi", 1, [(0.2, 1), (0.3, 1), (0.6, 1), (0.6, 1)], {"stopped_epoch": 4, "epochs_to_convergence": 3}),
        ("sigmoid", 0, [(0.1, 1), (0.2, 1), (0.3, 1), (0.4, 1)], {"stopped_epoch": None, "epochs_to_convergence": None}),
        ("sigmoid", 1, [(0.1, 1), (0.2, 1), (0.3, 1)], {"stopped_epoch": 3, "epochs_to_convergence": 3}),
    ])
    frame = comparison_frame(results).set_index("head")
    assert frame.loc["pmi", "epochs_to_convergence"] == 2.5 and frame.loc["pmi", "converged"] == 2
    assert frame.loc["sigmoid", "epochs_to_convergence"] == 3.0 and frame.loc["sigmoid", "converged"] == 1
    # stopped runs keep their last value: sigmoid's mean curve ends at (0.4 + 0.3) / 2 (cut to 3 epochs it would
    # end at 0.3); pmi's (seed 0 kept at 0.5) is 0.2, 0.4, 0.55, 0.55 and reaches it at epoch 2
    assert frame.loc["pmi", "epochs_to_reference"] == 2.0
    assert frame.loc["pmi", "final_mean"] == pytest.approx(np.mean([0.4, (0.3 + 0.6 + 0.6) / 3]))
    table = comparison_table(results)
    assert "sigmoid's last MAP@100 (0.3500)" in table
    assert "epochs to convergence (converged seeds)" in table and "2.5 (2/2)" in table and "3.0 (1/2)" in table


def test_equal_time_compares_every_head_at_the_smallest_total_training_time():
    results = _comparison([
        ("pmi", 0, [(0.2, 2.0), (0.4, 2.0), (0.5, 2.0)], None),         # 6 s
        ("pmi", 1, [(0.3, 1.0), (0.5, 1.0), (0.6, 1.0)], None),         # 3 s: mean total 4.5 s
        ("sigmoid", 0, [(0.1, 1.5), (0.3, 1.5), (0.45, 1.5), (0.5, 1.5)], None),   # 6 s
        ("sigmoid", 1, [(0.1, 2.5), (0.2, 2.5), (0.3, 2.5), (0.4, 2.5)], None),    # 10 s: mean 8 s
    ])
    frame = equal_time_frame(results).set_index("head")
    assert set(frame["seconds"]) == {4.5}
    # brute force: the last epoch completed within 4.5 s
    for head, expected, epochs in [("pmi", [0.4, 0.6], [2, 3]), ("sigmoid", [0.45, 0.1], [3, 1])]:
        assert frame.loc[head, "map_at_100_mean"] == pytest.approx(np.mean(expected))
        assert frame.loc[head, "map_at_100_std"] == pytest.approx(np.std(expected, ddof=1))
        assert frame.loc[head, "epochs"] == np.mean(epochs) and frame.loc[head, "seeds"] == 2
    assert frame.loc["sigmoid", "total_seconds"] == 8.0


def test_equal_time_in_an_experiment_pairs_each_embedding_cell_with_its_embedding_free_cell():
    cells = _tiny_cell(["pmi", "sigmoid"], epochs=2)
    embedding_cell, free_cell = (next(c for c in cells if c.embedding is not None), next(c for c in cells if c.embedding is None))
    histories = [{"cell": embedding_cell.name, "head": "pmi", "seed": 0,
                  "history": [{"epoch": 1, "map_at_100": 0.3, "seconds": 1.0}, {"epoch": 2, "map_at_100": 0.5, "seconds": 1.0}]},
                 {"cell": free_cell.name, "head": "sigmoid", "seed": 0,
                  "history": [{"epoch": 1, "map_at_100": 0.2, "seconds": 3.0}, {"epoch": 2, "map_at_100": 0.4, "seconds": 3.0}]}]
    results = {"histories": histories, "cells": {cell.name: {"settings": cell.settings()} for cell in cells}}
    frame = equal_time_frame(results)
    assert list(frame["cell"]) == [embedding_cell.name] * 2 and list(frame["head"]) == ["pmi", "sigmoid"]
    assert list(frame["seconds"]) == [2.0, 2.0] and frame["map_at_100_mean"].iloc[0] == 0.5
    assert math.isnan(frame["map_at_100_mean"].iloc[1]) and frame["seeds"].iloc[1] == 0  # sigmoid's first epoch took 3 s
