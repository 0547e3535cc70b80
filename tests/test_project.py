"""The project's own promises: set-up files agree with each other and with the README."""

import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from tests.conftest import REPOSITORY_ROOT

PYPROJECT = tomllib.loads((REPOSITORY_ROOT / "pyproject.toml").read_text())


def _names(requirements):
    names = set()
    for requirement in requirements:
        requirement = requirement.split(";")[0].strip()
        name = re.match(r"[A-Za-z0-9_.\-]+", requirement).group(0).lower().replace("_", "-")
        extras = re.search(r"\[(.*?)\]", requirement)
        names.add(name)
        if extras and name == "dask":
            names.update(extra.strip() for extra in extras.group(1).split(","))
    return names


def test_distribution_name_is_not_the_unrelated_pypi_package():
    assert PYPROJECT["project"]["name"] != "workbench"
    assert PYPROJECT["project"]["scripts"]["workbench"] == "workbench.cli:main"


def test_environment_yml_lists_every_pip_requirement():
    environment = (REPOSITORY_ROOT / "environment.yml").read_text().lower()
    listed = set(re.findall(r"^\s*-\s*([a-z0-9_.\-]+)", environment, flags=re.MULTILINE))
    required = _names(PYPROJECT["project"]["dependencies"]) | _names(PYPROJECT["project"]["optional-dependencies"]["test"])
    required.discard("tensorflow")  # tensorflow-cpu stands for it on Linux x86-64
    assert required - listed == set()


def test_ci_runs_exactly_the_readme_test_command():
    readme = (REPOSITORY_ROOT / "README.md").read_text()
    ci = (REPOSITORY_ROOT / ".ci" / "run").read_text()
    assert "make test    # set everything up, then run the whole test suite" in readme
    assert re.search(r"^make test$", ci, flags=re.MULTILINE)


def test_command_line_offers_every_documented_subcommand():
    result = subprocess.run([sys.executable, "-m", "workbench.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("scenes", "embed", "neighbours", "map", "train", "compare", "classify", "calibrate", "ceiling", "run"):
        assert re.search(rf"^\s+{command}\s", result.stdout, flags=re.MULTILINE), command


@pytest.mark.parametrize(
    "module",
    ["workbench.data.labels", "workbench.data.datasets", "workbench.data.scenes", "workbench.method.cooccurrence",
     "workbench.method.pmi", "workbench.method.eigensolvers", "workbench.method.embedding", "workbench.method.embed",
     "workbench.method.decoding", "workbench.method.targets", "workbench.learning.config",
     # measuring is Keras-free by folder: every module of evaluation/ (checked below as well)
     "workbench.evaluation.metrics", "workbench.evaluation.statistics", "workbench.evaluation.calibration",
     "workbench.evaluation.ceiling", "workbench.evaluation.analysis", "workbench.evaluation.coverage",
     "workbench.experiments.compare", "workbench.experiments.grid", "workbench.experiments.comparisons",
     "workbench.experiments.results", "workbench.experiments.experiment", "workbench.experiments.study",
     "workbench.experiments.report", "workbench.experiments.publication", "workbench.experiments.report_large",
     "workbench.method.decoders", "workbench.apps.classify",
     "workbench.notebook.workspace", "workbench.notebook.pipeline", "workbench.cli"],
)
def test_numpy_side_never_imports_keras(module):
    code = f"import sys, {module}; print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_every_evaluation_module_is_listed_as_keras_free():
    """``evaluation/`` is Keras-free as a folder: a new module there must join the list above."""
    listed = {name for mark in test_numpy_side_never_imports_keras.pytestmark if mark.name == "parametrize"
              for name in mark.args[1]}
    modules = {f"workbench.evaluation.{path.stem}" for path in (REPOSITORY_ROOT / "workbench" / "evaluation").glob("*.py")
               if path.stem != "__init__"}
    assert modules and modules <= listed, modules - listed


def test_the_package_layout_shows_the_data_flow_and_imports_never_point_back_up():
    """data ← method ← evaluation ← learning ← experiments ← apps/notebook ← api/cli: never an import from a later stage."""
    import ast

    order = {"data": 0, "method": 1, "evaluation": 2, "learning": 3, "experiments": 4, "apps": 5, "notebook": 5,
             "api": 6, "results": 6, "session": 6, "cli": 7}
    package = REPOSITORY_ROOT / "workbench"
    checked = 0
    for path in package.rglob("*.py"):
        parts = path.relative_to(package).with_suffix("").parts
        stage = parts[0] if parts[0] in order else None
        if stage is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                target = name.split(".")
                if target[0] == "workbench" and len(target) > 1 and target[1] in order:
                    checked += 1
                    assert order[target[1]] <= order[stage], f"{path.relative_to(REPOSITORY_ROOT)} imports {name}"
    assert checked > 50


@pytest.mark.slow
def test_the_prepared_gpu_check_runs_end_to_end_on_the_cpu_in_its_dry_mode(tmp_path):
    """``benchmarks/gpu_check.sh OUT --dry``: every step runs (small sizes) and leaves its figures in OUT."""
    import json
    import os

    completed = subprocess.run(["bash", str(REPOSITORY_ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "gpu"), "--dry"],
                               capture_output=True, text=True, timeout=900,
                               env={**os.environ, "PYTHON": sys.executable})
    assert completed.returncode == 0, completed.stderr
    summary = (tmp_path / "gpu" / "summary.txt").read_text()
    assert "device: ok" in summary and "training: ok" in summary and "eigh: ok" in summary, summary
    assert "compare: ok" in summary or "compare: skipped" in summary, summary
    eigh = json.loads((tmp_path / "gpu" / "eigh.json").read_text())
    assert eigh["max_relative_residual"] < 1e-3 and eigh["max_relative_eigenvalue_error"] < 1e-4
    assert "bare model.fit" in (tmp_path / "gpu" / "training.txt").read_text()
    # the full-size study grid, cut down by gpu_study.py dry-grid, runs to the end: every head, every k
    assert "study: ok" in summary or "study: skipped" in summary, summary
    if "study: ok" in summary:
        import csv

        dry = tomllib.loads((tmp_path / "gpu" / "grid-dry.toml").read_text())
        full = tomllib.loads((REPOSITORY_ROOT / "docs" / "study" / "grid-full.toml").read_text())
        assert {section: set(table) for section, table in dry.items()} == {section: set(table) for section, table in full.items()}
        assert dry["train"]["heads"] == full["train"]["heads"] and dry["data"]["groups"] == "all"
        with open(tmp_path / "gpu" / "study" / "results.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert {row["head"] for row in rows} == set(full["train"]["heads"])
        assert {row["dim"] for row in rows if row["head"] == "pmi"} == {str(k) for k in dry["embedding"]["dim"]}
        study = (tmp_path / "gpu" / "study.txt").read_text()
        assert "3 cells, 3 finished, 0 unfinished, 0 not started" in study, study[-2000:]
        assert re.search(r"at [\d,]+ training images/s: [\d.]+ h for the whole grid, 0\.0 h left", study), study[-2000:]


def test_the_full_grid_projects_the_training_it_holds_and_its_dry_copy_keeps_every_key(tmp_path):
    """``benchmarks/gpu_study.py``: the dry copy reads back as the grid it was made from, and the work is counted."""
    sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
    import gpu_study

    from workbench.experiments.experiment import TUNING_FACTORS
    from workbench.experiments.grid import expand_cells, parse_grid, read_grid

    full = read_grid(REPOSITORY_ROOT / "docs" / "study" / "grid-full.toml")
    assert full["data"]["images"] >= 100_000 and full["data"]["size"] == full["train"]["image_size"] == 64
    assert full["data"]["labels"] >= 1500 and full["data"]["groups"] == "all" and len(full["train"]["seeds"]) >= 5
    raw = tomllib.loads((REPOSITORY_ROOT / "docs" / "study" / "grid-full.toml").read_text())
    raw["train"]["learning_rates"] = {"sigmoid-lowrank": 0.003}
    text = gpu_study.toml_text(gpu_study.dry_grid(raw))
    dry = parse_grid(tomllib.loads(text))
    assert dry["train"]["learning_rates"] == {"sigmoid-lowrank": 0.003} and dry["data"]["images"] == 160
    assert dry["data"]["label_skew"] == full["data"]["label_skew"] and dry["train"]["tune_lr"] is False
    # the work, counted by brute force: every run and every tuning run, image-epochs of the training split
    cells = expand_cells(full)
    num_train = 100_000 - 20_000
    runs = sum(len(cell.heads) * len(cell.seeds) for cell in cells)
    assert runs == 5 * (5 * 4 + 2)
    holdout = cells[0].train.get("holdout_fraction", 0.2)
    expected_tuning = sum(len(cell.heads) for cell in cells) * len(TUNING_FACTORS) * 30 * (num_train - round(holdout * num_train))
    assert gpu_study.work(cells, images_of=lambda cell: num_train) == {
        "runs": runs * 30 * num_train, "tuning": expected_tuning, "total": runs * 30 * num_train + expected_tuning}
    report = gpu_study.progress(tmp_path / "none", REPOSITORY_ROOT / "docs" / "study" / "grid-full.toml", 20_000.0)
    hours = (runs * 30 * num_train + expected_tuning) / 20_000 / 3600
    assert f"5 cells, 0 finished, 0 unfinished, 5 not started" in report and f"{hours:.1f} h for the whole grid" in report


def test_the_study_benchmark_projects_the_grid_from_its_rates():
    """``benchmarks/bench_study.py``'s projection against a run-by-run count, and the protocol it chooses."""
    sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
    import bench_study

    runs = bench_study.grid_runs(dims=(16, 64, 256), seeds=5)
    assert runs["runs"] == {"k": 3 * 3 * 5, "bottleneck": 2 * 3 * 5, "C": 2 * 5} and sum(runs["runs"].values()) == 85
    rates = {"k": {"train_ips": 1000.0, "eval_spi": 1e-4}, "bottleneck": {"train_ips": 800.0, "eval_spi": 2e-4},
             "C": {"train_ips": 500.0, "eval_spi": 3e-4}}
    projected = bench_study.project_grid(rates, images=10_000, validation_fraction=0.2, epochs=10, runs=runs,
                                         holdout_fraction=0.15)
    seconds = tuning = 0.0
    for head, kind in bench_study.GRID_HEADS.items():  # run by run
        for _ in (16, 64, 256) if kind != "C" else (None,):
            for _ in range(5):
                seconds += 10 * (6_800 / rates[kind]["train_ips"] + (2_000 + 1_200) * rates[kind]["eval_spi"])
            for _ in range(bench_study.TUNING_RATES):
                tuning += 10 * (6_800 / rates[kind]["train_ips"] + 1_200 * rates[kind]["eval_spi"])
    assert projected["runs"] == pytest.approx(seconds) and projected["tuning"] == pytest.approx(tuning)
    # the hold-out scored by MAP@100 alone at its own rate: the validation split stays at the full evaluation's
    alone = {kind: {**values, "holdout_spi": values["eval_spi"] / 4} for kind, values in rates.items()}
    cheaper = bench_study.project_grid(alone, images=10_000, validation_fraction=0.2, epochs=10, runs=runs,
                                       holdout_fraction=0.15)
    seconds = tuning = 0.0
    for head, kind in bench_study.GRID_HEADS.items():
        for _ in (16, 64, 256) if kind != "C" else (None,):
            for _ in range(5):
                seconds += 10 * (6_800 / rates[kind]["train_ips"] + 2_000 * rates[kind]["eval_spi"]
                                 + 1_200 * rates[kind]["eval_spi"] / 4)
            for _ in range(bench_study.TUNING_RATES):
                tuning += 10 * (6_800 / rates[kind]["train_ips"] + 1_200 * rates[kind]["eval_spi"] / 4)
    assert cheaper["runs"] == pytest.approx(seconds) and cheaper["tuning"] == pytest.approx(tuning)
    trunk = {"images": 10_000, "epochs": 4, "train_ips": 400.0, "eval_spi": 1e-3, "features_ips": 2_000.0}
    staged = bench_study.project_grid(rates, images=10_000, validation_fraction=0.2, epochs=10, runs=runs, trunk=trunk,
                                      holdout_fraction=0.15)
    assert staged["trunk"] == pytest.approx(4 * (8_000 / 400 + 2_000 * 1e-3) + 10_000 / 2_000)
    assert staged["total"] == pytest.approx(projected["total"] + staged["trunk"])
    # within the budget, end-to-end before two-stage, larger images before smaller, then the faster
    base = {axis: "baseline" for axis in bench_study.AXES}
    options = [({**base, "protocol": "two-stage"}, 100.0), ({**base, "image size": "size-16"}, 200.0),
               ({**base, "image size": "size-24"}, 300.0), ({**base, "image size": "size-24", "backend": "jax"}, 250.0),
               (base, 9_000.0)]
    assert bench_study.choose(options, 1_000.0) == ({**base, "image size": "size-24", "backend": "jax"}, 250.0)
    assert bench_study.choose(options, 50.0) is None


def test_the_study_benchmark_projects_a_finished_run_again_with_its_own_epochs_tuning_runs_and_trunk():
    """``--actual``: the chosen protocol re-projected with what the run did, its trunk's rates the combination's own."""
    sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
    import bench_study

    heads = {"k": {"train_ips": 9_000.0, "eval_spi": 1e-4}, "bottleneck": {"train_ips": 4_000.0, "eval_spi": 1e-4},
             "C": {"train_ips": 2_000.0, "eval_spi": 2e-4}}
    baseline = {"heads": {kind: {"train_ips": 1_000.0, "eval_spi": 3e-4} for kind in heads}}
    results = {"two-stage": {"heads": heads, "features_ips": 4_000.0},
               "size-16": {"heads": {kind: {"train_ips": 2_000.0, "eval_spi": 3e-4} for kind in heads}}}
    runs = bench_study.grid_runs(dims=(16, 64, 256), seeds=5)
    grid = dict(images=10_000, validation_fraction=0.2, epochs=10, runs=runs, holdout_fraction=0.15)
    actual = {"mean_epochs": 15.5, "tuning_runs": 77, "trunk_images": 20_000, "trunk_epochs": 40}
    choice = {**{axis: "baseline" for axis in bench_study.AXES}, "image size": "size-16", "protocol": "two-stage"}
    again = bench_study.project_as_run(choice, results, baseline, grid, actual, trunk_images=10_000, trunk_epochs=15)
    # the trunk trains at the 16 px end-to-end C-head rate (2,000 images/s), not the baseline's or the heads'
    trunk = {"train_ips": 2_000.0, "eval_spi": 3e-4, "features_ips": 8_000.0}
    assert again["epochs"] == bench_study.project_grid(heads, **{**grid, "epochs": 15.5},
                                                       trunk={**trunk, "images": 10_000, "epochs": 15})
    planned = sum(runs["tuning"].values())
    scaled = {kind: count * 77 / planned for kind, count in runs["tuning"].items()}
    assert sum(scaled.values()) == pytest.approx(77)
    assert again["as_run"] == bench_study.project_grid(heads, **{**grid, "epochs": 15.5, "runs": {**runs, "tuning": scaled}},
                                                       trunk={**trunk, "images": 20_000, "epochs": 40})
    assert again["as_run"]["trunk"] == pytest.approx(40 * (16_000 / 2_000 + 4_000 * 3e-4) + 10_000 / 8_000)
    assert again["as_run"]["total"] > again["epochs"]["total"] > bench_study.project_grid(
        heads, **grid, trunk={**trunk, "images": 10_000, "epochs": 15})["total"]
    # tuning runs with a cap of their own (``tuning_epochs``): projected at their own mean epochs, the runs at theirs
    shorter = bench_study.project_as_run(choice, results, baseline, grid, {**actual, "tuning_mean_epochs": 7.0},
                                         trunk_images=10_000, trunk_epochs=15)["as_run"]
    assert shorter["runs"] == pytest.approx(again["as_run"]["runs"]) and shorter["trunk"] == pytest.approx(again["as_run"]["trunk"])
    assert shorter["tuning"] == pytest.approx(again["as_run"]["tuning"] * 7.0 / 15.5)


def test_the_study_benchmark_sums_a_finished_run_s_time_per_part_from_its_histories(tmp_path):
    """``--actual``'s process time: training, validation and hold-out scoring of runs, and of tuning runs, summed."""
    import json

    sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
    import bench_study

    histories = {"cells/dim-16/runs/pmi-seed0": [{"seconds": 1.0, "eval_seconds": 2.0, "holdout_eval_seconds": 0.5},
                                                 {"seconds": 1.5, "eval_seconds": 2.5, "holdout_eval_seconds": 0.25}],
                 "cells/dim-64/runs/sigmoid-seed1": [{"seconds": 4.0, "eval_seconds": 3.0}],  # before the hold-out was timed
                 "cells/dim-16/tuning/pmi-lr0.01": [{"seconds": 2.0, "eval_seconds": 1.0}, {"seconds": 2.0, "eval_seconds": 1.0}]}
    for folder, history in histories.items():
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "history.json").write_text(json.dumps(history))
    assert bench_study.process_time(tmp_path) == {"runs_train": 6.5, "runs_validation": 7.5, "runs_holdout": 0.75,
                                                 "tuning_train": 4.0, "tuning_evaluation": 2.0}


def test_the_evaluation_benchmark_times_the_previous_code_and_this_one_on_the_same_metrics(monkeypatch, capsys):
    """``benchmarks/bench_evaluation.py`` on a small family: its baseline (the previous top k) gives the same metrics."""
    sys.path.insert(0, str(REPOSITORY_ROOT / "benchmarks"))
    import bench_evaluation

    from workbench.evaluation import metrics

    rng = np.random.default_rng(0)
    for block in (rng.standard_normal((64, 300)), np.round(rng.random((64, 300)), 1).astype(np.float32)):
        assert np.array_equal(bench_evaluation.previous_top_k(block, 100), metrics._top_k(block, 100))
    monkeypatch.setitem(bench_evaluation.FAMILIES, "small", {"labels": 300, "validation": 400, "holdout": 200, "ties": True})
    assert bench_evaluation.main(["--repeats", "1", "--families", "small"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("small"))
    figures = [float(value) for value in row.split()[1:]]
    assert len(figures) == 7 and all(value > 0 for value in figures)
    assert metrics._top_k is not bench_evaluation.previous_top_k  # the module's ranking is restored after the baseline


@pytest.mark.slow
def test_the_study_benchmark_measures_every_lever_at_a_tiny_size(tmp_path):
    """``benchmarks/bench_study.py`` end to end at a tiny size: each lever measured, ratios, projections, a choice."""
    import json

    out = tmp_path / "study.json"
    command = [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "bench_study.py"), "--labels", "40", "--images", "128",
               "--validation-images", "64", "--epochs", "2", "--levers", "size-16,width-8,files-uncached,two-stage",
               "--grid-images", "4000", "--grid-epochs", "3", "--trunk-epochs", "2", "--budget-hours", "1000", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    printed = completed.stdout
    assert "load average before" in printed and "load average after" in printed
    for lever in ("baseline", "size-16", "width-8", "files-uncached", "two-stage heads"):
        assert re.search(rf"^{lever}\s+\d+\s+[\d.]+\s+\d+\s+[\d.]+", printed, flags=re.MULTILINE), (lever, printed)
    figures = json.loads(out.read_text())
    baseline = figures["levers"]["baseline"]["heads"]
    small = figures["levers"]["size-16"]["heads"]
    ratio = small["k"]["train_ips"] / baseline["k"]["train_ips"]
    assert re.search(rf"^size-16\s+{small['k']['train_ips']:.0f}\s+{ratio:.2f}\s", printed, flags=re.MULTILINE), printed
    assert "Chosen protocol: baseline" in printed  # everything fits 1,000 hours: end-to-end, 32 px, width 16
    assert len(figures["projections"]) == 2 * 2 * 2 and figures["chosen"]["choice"]["protocol"] == "baseline"
    assert "Decoded-image caching" not in printed  # measured only with both file levers
    # the hold-out's evaluation (MAP@100 alone) measured apart, and printed (how fast is the benchmark's to say, not a test's)
    for name, lever in figures["levers"].items():
        for kind, rates in lever["heads"].items():
            assert 0 < rates["holdout_spi"] < float("inf"), (name, kind, rates)
    assert re.search(r"^baseline(\s+[\d.]+){7}$", printed, flags=re.MULTILINE), printed  # with the hold-out column


@pytest.mark.slow
def test_the_embedding_benchmark_measures_every_family_against_an_exact_reference(tmp_path):
    """``benchmarks/bench_embedding.py`` at a small size: every family gets times, memory and accuracy."""
    import json
    import os

    out = tmp_path / "figures.json"
    command = [sys.executable, str(REPOSITORY_ROOT / "benchmarks" / "bench_embedding.py"), "--labels", "400", "--images",
               "20000", "--dims", "24", "--solver", "randomized", "--tolerance", "1e-3", "--skip-dask",
               "--baseline-images", "500", "--neighbour-sample", "50", "--cache", str(tmp_path / "cache"), "--out", str(out)]
    families = ["topics", "narrow", "broad", "coco"]
    if (REPOSITORY_ROOT.parent / "shared" / "data" / "cooccurrence" / "voc2007_trainval.json").is_file():
        families.append("voc")
    completed = subprocess.run([*command, "--families", ",".join(families)], capture_output=True, text=True, timeout=900,
                               env={**os.environ, "WORKBENCH_EIGH_ON_CPU": "1"})
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-2000:]
    reports = {report["family"]: report for report in json.loads(out.read_text())["families"]}
    assert sorted(reports) == sorted(families)
    for name, report in reports.items():
        ours, arpack = report["workbench_k24"], report["eigsh_k24"]
        assert ours["solver"] == "randomized" and report["reference"]["cached"] is False
        # the residual is recomputed here: an eigenvalue of P lies within residual·λ of each value
        assert ours["max_relative_residual"] < 1e-2 and ours["eigenvalues"]["beyond_1_percent"] == 0, (name, ours)
        assert arpack["eigenvalues"]["max_relative_error"] < 1e-2, (name, arpack)
        assert 0 < ours["peak_gb"] < 6 and report["pmi_seconds"] >= 0
        assert ours["neighbours"]["mean_overlap"] > 0.9, (name, ours)
    assert reports["topics"]["counting_baseline"]["python_images"] == 500 and reports["coco"]["count_seconds"] is None
    assert reports["coco"]["num_labels"] == 400 and reports["narrow"]["labels_per_image"] < reports["broad"]["labels_per_image"]
    # a second run reads the exact references from the cache
    completed = subprocess.run([*command, "--families", "coco", "--skip-eigsh"], capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0 and json.loads(out.read_text())["families"][0]["reference"]["cached"] is True
    assert "| coco | 400 | 24 |" in completed.stdout


def test_no_module_is_over_600_lines_without_a_reason_in_its_docstring():
    import ast

    long_and_silent = []
    for path in (REPOSITORY_ROOT / "workbench").rglob("*.py"):
        text = path.read_text()
        if len(text.splitlines()) <= 600:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not re.search(r"Why one module of about \d+ lines|longer than the house's few hundred lines", docstring):
            long_and_silent.append(f"{path.relative_to(REPOSITORY_ROOT)} ({len(text.splitlines())} lines)")
    assert not long_and_silent, long_and_silent


def test_cli_is_argument_parsing_only_and_short():
    cli = (REPOSITORY_ROOT / "workbench" / "cli.py").read_text()
    assert len(cli.splitlines()) <= 500
    assert "workbench.notebook.helpers" not in cli, "the command line formats nothing itself"
