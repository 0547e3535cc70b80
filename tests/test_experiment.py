"""Experiment grids: parsing, cells, a killed experiment that resumes, aggregates equal to the cells' own histories."""

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from workbench.experiments.grid import expand_cells, parse_grid, read_grid

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

TINY = """
[data]
labels = [6, 8]
images = 48
size = 16
validation_fraction = 0.25
[embedding]
dim = [2, 3]
[train]
heads = ["pmi"]
seeds = [0]
epochs = 2
image_size = 16
batch_size = 16
width = 4
depth = 2
tune_lr = false   # tuning (on by default) has its own test below; these test resuming and Dask
"""


# ---------------------------------------------------------------------------------
# the grid file
# ---------------------------------------------------------------------------------
def test_defaults_fill_every_key_and_lists_are_axes():
    grid = parse_grid({"embedding": {"dim": [4, 8]}, "data": {"labels": 30}})
    assert grid["data"]["labels"] == 30 and grid["data"]["images"] == 200
    assert grid["train"]["heads"] == ["pmi", "random", "identity", "sigmoid"], "identity is a default head"
    assert grid["train"]["seeds"] == [0, 1, 2, 3, 4], "five seeds: a paired interval needs at least four"
    cells = expand_cells(grid)
    # pmi and random per k; identity and sigmoid once (they do not depend on the embedding)
    assert [cell.name for cell in cells] == ["dim-4", "dim-8", "no-embedding"]
    assert cells[0].heads == ("pmi", "random") and cells[2].heads == ("identity", "sigmoid")
    assert cells[2].embedding is None and cells[0].embedding_options().embedding_dim == 4


def test_a_tuning_run_is_capped_at_tuning_epochs_where_set_else_at_the_runs_epochs():
    plain = expand_cells(parse_grid({"train": {"epochs": 12, "heads": ["pmi"]}}))[0]
    assert plain.tuning_epochs == 12 and "tuning_epochs" not in plain.train  # the settings of cells made before it
    capped = expand_cells(parse_grid({"train": {"epochs": 12, "tuning_epochs": 5, "heads": ["pmi"]}}))[0]
    assert capped.tuning_epochs == 5 and capped.train["tuning_epochs"] == 5
    assert capped.name == plain.name


def test_cell_names_hold_every_axis_and_stay_when_the_grid_grows():
    small = expand_cells(parse_grid({"data": {"labels": [10, 20], "missing_rate": [0.0, 0.1]},
                                     "embedding": {"dim": [4]}, "train": {"heads": ["pmi"]}}))
    assert [cell.name for cell in small] == ["labels-10_missing-0_dim-4", "labels-10_missing-0.1_dim-4",
                                             "labels-20_missing-0_dim-4", "labels-20_missing-0.1_dim-4"]
    grown = expand_cells(parse_grid({"data": {"labels": [10, 20, 40], "missing_rate": [0.0, 0.1]},
                                     "embedding": {"dim": [4]}, "train": {"heads": ["pmi"]}}))
    assert {cell.name for cell in small} < {cell.name for cell in grown}


@pytest.mark.parametrize("raw, message", [
    ({"dat": {}}, r"unknown table \[dat\]"),
    ({"data": {"lables": [20]}}, r"\[data\] has no key 'lables'"),
    ({"embedding": {"dim": []}}, "empty list"),
    ({"embedding": {"dim": [4, 4]}}, "repeats a value"),
    ({"embedding": {"dim": [0]}}, "dim must be a positive integer"),
    ({"embedding": {"pmi": "nonsense"}}, "pmi"),
    ({"train": {"heads": ["pmi", "softmax"]}}, "heads"),
    ({"data": {"missing_rate": 1.5}}, r"^grid: \[data\] missing_rate: missing_rate must be a number from 0 to 1"),
    ({"data": {"size": 8}}, r"^grid: \[data\] size: image_size must be an integer from 16 to 1024"),
    ({"data": {"validation_fraction": "0.2"}}, r"^grid: \[data\] validation_fraction: .* must be a finite number"),
    ({"embedding": {"pmi": "clip"}}, r"^grid: \[embedding\] pmi: policy='clip' needs a finite clip_value"),
    ({"train": {"seeds": [0, -1]}}, r"^grid: \[train\] seeds: .*random_state must be a non-negative integer; got -1"),
    ({"train": {"image_size": [16, 64], "depth": 5}}, r"^grid: \[train\] image_size and depth: image_size 16 is too small"),
    ({"train": {"learning_rates": {"softmax": 0.1}}}, r"^grid: \[train.learning_rates\] softmax: Unknown head"),
    ({"data": {"path": "somewhere", "labels": [5]}}, "path is set, so 'labels' does not apply"),
    ({"train": {"learning_rates": {"pmi": -1}}}, "learning rate of pmi"),
    ({"train": {"tune_lr": "yes"}}, "true or false"),
    ({"train": {"tuning_epochs": -1}}, r"^grid: \[train\] tuning_epochs must be a whole number of epochs"),
    ({"train": {"tuning_epochs": [4, 8]}}, "takes one value"),
])
def test_grid_mistakes_are_one_line_errors(raw, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_grid(raw)
    assert "\n" not in str(error.value)


def test_read_grid_reports_bad_toml_and_resolves_a_relative_data_path(tmp_path):
    (tmp_path / "bad.toml").write_text("[data\nlabels = 3")
    with pytest.raises(ValueError, match="not valid TOML"):
        read_grid(tmp_path / "bad.toml")
    with pytest.raises(FileNotFoundError, match="not found"):
        read_grid(tmp_path / "missing.toml")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "grid.toml").write_text('[data]\npath = "../photos"\n[train]\nheads = ["sigmoid"]\n')
    grid = read_grid(tmp_path / "sub" / "grid.toml")
    assert grid["data"]["path"] == str((tmp_path / "photos").resolve())
    assert [cell.name for cell in expand_cells(grid)] == ["no-embedding"]


# ---------------------------------------------------------------------------------
# an experiment, killed and resumed
# ---------------------------------------------------------------------------------
def _command(grid: Path, out: Path, *extra) -> list:
    return [sys.executable, "-m", "workbench.cli", "experiment", "--grid", str(grid), "--out", str(out), *extra]


def _finished_cells(out: Path) -> list:
    found = []
    for path in sorted((out / "cells").glob("*/cell.json")) if (out / "cells").is_dir() else []:
        try:
            if json.loads(path.read_text()).get("status") == "complete":
                found.append(path.parent.name)
        except (ValueError, OSError):  # being replaced at this moment
            pass
    return found


@pytest.mark.slow
def test_a_tiny_grid_killed_mid_way_resumes_skips_finished_cells_and_aggregates_its_histories(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY)
    out = tmp_path / "out"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(_command(grid, out, "--cores", "1"), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env=environment, start_new_session=True)
    try:
        import time

        deadline = time.monotonic() + 300
        while process.poll() is None and time.monotonic() < deadline and not _finished_cells(out):
            time.sleep(0.05)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    done_before = _finished_cells(out)
    assert 1 <= len(done_before) < 4, "killed after the first cell and before the last"
    first = out / "cells" / done_before[0]
    stamp = {path: path.stat().st_mtime_ns for path in first.rglob("*") if path.is_file()}

    rerun = subprocess.run(_command(grid, out, "--cores", "1"), capture_output=True, text=True, env=environment,
                           timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{done_before[0]}: finished earlier, skipped" in rerun.stdout
    assert {path: path.stat().st_mtime_ns for path in first.rglob("*") if path.is_file()} == stamp, \
        "a finished cell is not touched"
    assert sorted(_finished_cells(out)) == sorted(cell.name for cell in expand_cells(read_grid(grid)))
    assert "Traceback" not in rerun.stderr

    results = json.loads((out / "results.json").read_text())
    with open(out / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(results["rows"]) == 4
    required = {"cell", "head", "dim", "pmi", "seed", "num_labels", "num_images", "epochs", "map_at_100",
                "map_at_100_low", "map_at_100_high", "macro_ap", "seconds"}
    assert required <= set(rows[0])
    for row in results["rows"]:
        cell = json.loads((out / "cells" / row["cell"] / "results.json").read_text())
        history = next(run["history"] for run in cell["runs"] if run["head"] == row["head"] and run["seed"] == row["seed"])
        assert row["map_at_100"] == pytest.approx(np.mean([record["map_at_100"] for record in history[-3:]]), abs=1e-12)
        assert row["macro_ap"] == pytest.approx(np.mean([record["macro_ap"] for record in history[-3:]]), abs=1e-12)
        assert row["map_at_100_low"] <= row["map_at_100"] <= row["map_at_100_high"]
        assert row["dim"] == int(row["cell"].split("dim-")[1]) and row["pmi"] == "zero"
        assert row["num_labels"] == int(row["cell"].split("_")[0].split("-")[1])
    provenance = results["provenance"]
    assert provenance["version"] and provenance["cpu_count"] and provenance["seconds"] is not None
    assert results["grid"]["embedding"]["dim"] == [2, 3] and results["grid"]["data"]["labels"] == [6, 8]
    assert (out / "results.png").is_file() and (out / "grid.toml").read_text() == TINY


@pytest.mark.slow
def test_cells_run_on_a_dask_cluster_and_a_changed_cell_is_refused_before_anything_is_written(tmp_path):
    grid = tmp_path / "grid.toml"
    grid.write_text(TINY.replace("labels = [6, 8]", "labels = 6").replace('heads = ["pmi"]',
                                                                          'heads = ["pmi", "random", "identity"]'))
    out = tmp_path / "out"
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(_command(grid, out, "--cores", "2"), capture_output=True, text=True, env=environment,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert sorted((row["cell"], row["head"]) for row in results["rows"]) == [
        ("dim-2", "pmi"), ("dim-2", "random"), ("dim-3", "pmi"), ("dim-3", "random"), ("no-embedding", "identity")]
    assert [(test["cell"], test["head"], test["baseline"]) for test in results["comparisons"]] == [
        ("dim-2", "pmi", "random"), ("dim-2", "pmi", "identity"), ("dim-3", "pmi", "random"), ("dim-3", "pmi", "identity")]
    assert (out / "comparisons.csv").read_text().splitlines()[0] == \
        "num_labels,dim,head,baseline,seeds,difference,low,high,p_value,p_adjusted,verdict"
    identity = next(row for row in results["rows"] if row["head"] == "identity")
    assert identity["dim"] == 6 and identity["ceiling_map_at_100"] == pytest.approx(1.0)

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()}
    grid.write_text(grid.read_text().replace("\nsize = 16\n", "\nsize = 20\n"))  # the data of every cell changes
    refused = subprocess.run(_command(grid, out, "--cores", "1"), capture_output=True, text=True, env=environment,
                             timeout=300)
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1 and "holds a cell with other settings (data)" in refused.stderr
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file()} == before


def test_an_experiment_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    from workbench.cli import main

    (tmp_path / "grid.toml").write_text(TINY)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    assert main(["experiment", "--grid", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "was not written by 'workbench experiment'" in error
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "miml_scenes").is_dir(), reason="../shared/data/miml_scenes is absent")
def test_an_experiment_on_the_real_miml_photos(tmp_path):
    from workbench.experiments.experiment import run_experiment

    grid = parse_grid({"data": {"path": str(SHARED / "miml_scenes"), "validation_fraction": 0.25},
                       "embedding": {"dim": [2]},
                       "train": {"heads": ["pmi", "sigmoid"], "seeds": [0], "epochs": 1, "image_size": 16,
                                 "width": 4, "depth": 2}})
    results = run_experiment(grid, out_dir=tmp_path / "out", cores=1, print_function=lambda line: None)
    assert not results["failed"]
    assert {row["head"] for row in results["rows"]} == {"pmi", "sigmoid"}
    assert all(0 <= row["map_at_100"] <= 1 for row in results["rows"])


@pytest.mark.slow
def test_tune_lr_picks_each_heads_best_rate_on_a_hold_out_of_the_training_split(tmp_path):
    from workbench.experiments.experiment import TRAIL_FILE, TUNING_FACTORS, run_experiment
    from workbench.learning.config import DEFAULT_LEARNING_RATES

    grid = parse_grid({"data": {"labels": 6, "images": 48, "size": 16, "validation_fraction": 0.25},
                       "embedding": {"dim": 2},
                       "train": {"heads": ["pmi", "sigmoid"], "seeds": [0], "epochs": 2, "image_size": 16,
                                 "batch_size": 16, "width": 4, "depth": 2}})
    assert grid["train"]["tune_lr"] is True  # the default
    results = run_experiment(grid, out_dir=tmp_path / "out", cores=1, print_function=lambda line: None)
    assert not results["failed"]
    for name, cell in results["cells"].items():
        table = cell["tuning"]
        for head in cell["settings"]["heads"]:
            tried = [entry for entry in table if entry["head"] == head]
            assert [entry["learning_rate"] for entry in tried[:3]] == pytest.approx(
                [DEFAULT_LEARNING_RATES[head] * factor for factor in TUNING_FACTORS], rel=1e-2)
            chosen = [entry for entry in tried if entry["chosen"]]
            assert len(chosen) == 1 and chosen[0]["holdout_map_at_100"] == max(e["holdout_map_at_100"] for e in tried)
            assert cell["learning_rates"][head] == chosen[0]["learning_rate"]
            row = next(row for row in results["rows"] if row["head"] == head)
            assert row["learning_rate"] == chosen[0]["learning_rate"]
        assert (tmp_path / "out" / "cells" / name / TRAIL_FILE).is_file()
    # the tuning runs trained on the part of the training split the cell's runs train on, scored on its hold-out
    tuning = json.loads(next((tmp_path / "out" / "cells").glob("*/tuning/*/config.json")).read_text())
    compared = json.loads(next((tmp_path / "out" / "cells").glob("*/runs/*/config.json")).read_text())
    assert tuning["data"]["num_train"] == compared["data"]["num_train"]
    assert tuning["data"]["num_validation"] == compared["data"]["num_holdout"] > 0
    assert tuning["data"]["holdout"] == "validation" and compared["data"]["holdout"] == "training split"
    # a tuning run is scored by the MAP@100 it is chosen on alone; a reported run in full
    tuning_history = json.loads(next((tmp_path / "out" / "cells").glob("*/tuning/*/history.json")).read_text())
    run_history = json.loads(next((tmp_path / "out" / "cells").glob("*/runs/*/history.json")).read_text())
    assert "map_at_100" in tuning_history[-1] and "macro_ap" not in tuning_history[-1]
    assert {"macro_ap", "precision_at_5", "holdout_map_at_100"} <= set(run_history[-1])
    # a higher cap: refused while it would train the tuning runs further; with tuning_epochs at the cap they had,
    # the runs train on and the tuning runs (and so the rates) stay as they were
    trails = {path: path.read_bytes() for path in (tmp_path / "out" / "cells").glob(f"*/{TRAIL_FILE}")}
    raised = {**grid, "train": {**grid["train"], "epochs": 3}}
    with pytest.raises(ValueError, match=r"tuning runs capped at 2 epochs.*set \[train\] tuning_epochs = 2") as error:
        run_experiment(raised, out_dir=tmp_path / "out", cores=1, print_function=lambda line: None)
    assert "\n" not in str(error.value)
    raised["train"]["tuning_epochs"] = 2
    again = run_experiment(raised, out_dir=tmp_path / "out", cores=1, print_function=lambda line: None)
    assert not again["failed"] and {path: path.read_bytes() for path in trails} == trails
    for path in (tmp_path / "out" / "cells").glob("*/tuning/*/history.json"):
        assert len(json.loads(path.read_text())) == 2
    for path in (tmp_path / "out" / "cells").glob("*/runs/*/history.json"):
        assert len(json.loads(path.read_text())) == 3
    assert [cell["learning_rates"] for cell in again["cells"].values()] == \
        [cell["learning_rates"] for cell in results["cells"].values()]


def test_the_invocation_clock_keeps_the_wall_clock_while_it_runs_and_at_its_end(tmp_path):
    import time

    from workbench.experiments.experiment import InvocationClock

    path = tmp_path / "experiment.json"
    record = {"invocations": [{"began": "earlier", "seconds": 12.5, "cells_finished": 3},
                              {"began": "now", "seconds": 0.0, "cells_finished": 0}]}
    with InvocationClock(path, record, began=time.perf_counter(), interval=0.05):
        time.sleep(0.4)
        during = json.loads(path.read_text())["invocations"]  # written by the clock alone: no cell finished
        assert 0.0 < during[-1]["seconds"] <= 0.4 and during[0]["seconds"] == 12.5
    after = json.loads(path.read_text())["invocations"][-1]
    assert after["seconds"] >= 0.4 and after["cells_finished"] == 0
