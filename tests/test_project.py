"""The project's own promises: set-up files agree with each other and with the README."""

import re
import subprocess
import sys
import tomllib

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
     "workbench.experiments.report",
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
