"""Running an experiment grid: every cell trained in its own folder, resumably, in parallel.

``DIR/cells/<cell name>/`` holds one cell: ``cell.json`` (its settings and status), the
comparison :func:`workbench.experiments.compare.compare` writes (``results.json``,
``embedding/``, ``runs/<head>-seed<seed>/``), ``ceiling.json`` (the decoding ceiling of
the cell's embedding, :func:`workbench.evaluation.ceiling.decoding_ceiling`), ``tuning/``
(with ``tune_lr``: a run per head and rate tried, and ``trail.csv``) and ``log.txt``.
Before anything is written, every cell folder is checked: new, or holding the same cell
(more epochs, heads or seeds are fine: it resumes); anything else is refused, so a cell
never overwrites another. A finished cell is skipped without starting Keras; an
unfinished one resumes where it stopped (a run resumes after its last complete epoch).
A two-stage grid (``protocol = "two-stage"``) keeps the trunks its cells share in
``DIR/trunks/<name>/`` (:mod:`workbench.learning.twostage`): the first cell to need one trains it,
under a lock, and the others wait for it and read its cached features.

Cells run one after another with ``cores=1``; otherwise on a ``dask.distributed``
cluster: a ``LocalCluster`` of ``cores`` single-threaded worker processes by default, or
the cluster at ``scheduler`` (its workers need the package and must see ``DIR``). After
every finished cell, ``DIR/results.csv`` and ``DIR/results.json`` are rewritten
(:mod:`workbench.experiments.results`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from pathlib import Path
from typing import Callable

from workbench import _checks
from workbench._io import atomic_write_json, atomic_write_text, check_output_folder, read_json
from workbench.experiments.grid import CELL_FORMAT, GROWABLE, SCENE_KEYS_ADDED, Cell, default_learning_rate, expand_cells
from workbench.method.targets import PMI_HEADS

__all__ = ["run_experiment", "run_cell", "cell_state", "tune_learning_rates", "InvocationClock", "EXPERIMENT_MARKER",
           "TUNING_FACTORS", "TUNING_FIRST_STEPS", "TUNING_STEP", "TUNING_MAX_STEPS", "TRAIL_FILE"]

#: The file that makes a folder an experiment's output.
EXPERIMENT_MARKER = "experiment.json"
#: ``tune_lr`` steps rates by this factor: it first tries each head's default rate this many steps away ...
TUNING_STEP = 3.0
TUNING_FIRST_STEPS = (-1, 0, 1)
#: ... (the default times these factors), then, while the best rate is the smallest or the largest tried,
#: the next rate one step beyond it ...
TUNING_FACTORS = tuple(TUNING_STEP ** step for step in TUNING_FIRST_STEPS)
#: ... up to this many steps from the default either way (rates from default / 3⁴ to default × 3⁴); a best
#: rate still on that edge is recorded as ``capped``.
TUNING_MAX_STEPS = 4
#: The tuning trail in a cell folder: every rate tried, its hold-out value, the chosen one.
TRAIL_FILE = "tuning/trail.csv"
_TRAIL_COLUMNS = ("head", "learning_rate", "holdout_map_at_100", "epochs", "epochs_to_convergence", "chosen", "capped")


def cell_folder(out_dir: str | Path, cell: Cell) -> Path:
    return Path(out_dir) / "cells" / cell.name


def _comparable(settings: dict) -> dict:
    """A cell's settings without what may grow between runs of the grid."""
    given = settings.get("train", {})
    train = {key: value for key, value in given.items() if key not in (*GROWABLE, "tuning_epochs")}
    if given.get("tune_lr"):  # the cap its tuning runs had (the runs' cap where tuning_epochs is not set)
        train["tuning_epochs"] = given.get("tuning_epochs") or given.get("epochs")
    data = settings.get("data") or {}
    if not data.get("path"):  # a cell written before the scene keys were added had their earlier values
        data = {**SCENE_KEYS_ADDED, **data}
    return {**{key: value for key, value in settings.items() if key not in (*GROWABLE, "train", "status", "seconds",
                                                                             "learning_rates", "tuning", "error")},
            "train": train, "data": data}


def cell_state(out_dir: str | Path, cell: Cell) -> str:
    """``"new"``, ``"finished"`` or ``"unfinished"``; ``ValueError`` when the folder holds something else.

    Finished means a complete earlier run of this very cell with at least its heads,
    seeds and epochs.
    """
    folder = cell_folder(out_dir, cell)
    if not folder.exists() or not any(not entry.name.startswith(".") for entry in folder.iterdir()):
        return "new"
    if not (folder / "cell.json").is_file():
        raise ValueError(f"{folder} is not empty and holds no experiment cell (no cell.json); move it away or "
                         "give --out another folder.")
    before = read_json(folder / "cell.json")
    if not isinstance(before, dict) or before.get("format") != CELL_FORMAT:
        raise ValueError(f"{folder / 'cell.json'} is not an experiment cell; move the folder away.")
    current = cell.settings()
    before_settings, current_settings = _comparable(before), _comparable(current)
    if before_settings != current_settings:
        changed = sorted(key for key in set(before_settings) | set(current_settings)
                         if before_settings.get(key) != current_settings.get(key))
        before_train, current_train = before_settings["train"], current_settings["train"]
        if changed == ["train"] and {key: value for key, value in before_train.items() if key != "tuning_epochs"} == \
                {key: value for key, value in current_train.items() if key != "tuning_epochs"}:
            raise ValueError(f"{folder} holds this cell with tuning runs capped at {before_train.get('tuning_epochs')} "
                             f"epochs, and this grid would train them to {current_train.get('tuning_epochs')}; set [train] "
                             f"tuning_epochs = {before_train.get('tuning_epochs')} to raise epochs without training them "
                             "further, or give --out a new folder.")
        raise ValueError(f"{folder} holds a cell with other settings ({', '.join(changed)}); give --out "
                         "a new folder, or delete that cell to run it again.")
    finished = (before.get("status") == "complete" and set(cell.heads) <= set(before.get("heads", ()))
                and set(cell.seeds) <= set(before.get("seeds", ()))
                and before.get("train", {}).get("epochs", 0) >= cell.train["epochs"] and _analysed(folder, cell))
    return "finished" if finished else "unfinished"


def _cell_dataset(cell: Cell, *, num_images: int | None = None):
    """The cell's data set: loaded from its path, or its scenes generated (``num_images`` replaces the cell's: the
    two-stage trunk's own scenes continue its draw)."""
    data = cell.data
    if data.get("path"):
        from workbench.data.datasets import load_dataset

        return load_dataset(data["path"])
    from workbench.data.scenes import generate_scenes

    added = {key: data.get(key, value) for key, value in SCENE_KEYS_ADDED.items()}  # absent from earlier cells
    return generate_scenes(num_images=num_images or data["images"], num_labels=data["labels"], image_size=data["size"],
                           missing_rate=data["missing_rate"], spurious_rate=data["spurious_rate"],
                           random_state=data["seed"], **added)


def _limit_threads(threads: int | None) -> None:
    """One worker process, ``threads`` threads (set before Keras starts; no effect after)."""
    if threads:
        for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
            os.environ.setdefault(name, str(threads))


def _rate(head: str, cell: Cell, step: int) -> float:
    """The rate ``step`` steps of :data:`TUNING_STEP` from the head's default (3 significant digits)."""
    return float(f"{default_learning_rate(head, cell) * TUNING_STEP ** step:.3g}")


def _best_step(values: dict) -> int | None:
    """The step with the highest value (``None`` values never win); ties go to the step nearest the default."""
    scored = [(value, -abs(step), step) for step, value in values.items() if value is not None and not math.isnan(value)]
    return max(scored)[2] if scored else None


def tune_learning_rates(train_set, *, cell: Cell, folder: Path, model, embedding_options,
                        print_function: Callable[[str], None] = print, trunk=None) -> tuple[dict, list]:
    """Each head's learning rate, tuned on a hold-out of the training split with an equal budget for every head.

    The training split is split again into the part the cell's runs train on and the
    hold-out their stopping rule watches (:func:`workbench.learning.stopping.holdout_split`:
    the cell's ``holdout_fraction``, seed 1). Every head first tries its default rate times
    :data:`TUNING_FACTORS`; while the best rate is the smallest or the largest tried (strictly
    better than every other), the next rate one :data:`TUNING_STEP` beyond it is tried, up to
    :data:`TUNING_MAX_STEPS` steps from the default (then the head is recorded as ``capped``).
    Each tuning run is trained as the cell's runs are (its first seed, its epochs as the cap,
    its schedule and stopping rule, watching the hold-out), and scored by its final value on the
    hold-out (:func:`workbench.evaluation.statistics.final_value`, the definition of the reported
    value); the highest wins. The validation split is never seen: ``train_set`` is the training
    split, and nothing else is read. The runs are kept under ``folder`` (a rerun reuses them)
    with the trail in ``folder/trail.csv``. With ``trunk`` (the two-stage protocol) ``train_set`` is
    the heads' part of the training split and every tuning run trains a head on its features.

    Returns
    -------
    (rates, table) : dict, list of dict
        The chosen rate per head, and every tried ``{"head", "learning_rate",
        "holdout_map_at_100", "epochs", "epochs_to_convergence", "chosen", "capped"}`` in the
        order tried.
    """
    from workbench.experiments.compare import head_config
    from workbench.evaluation.statistics import final_value
    from workbench.learning.stopping import holdout_split
    from workbench.learning.training import train

    stopping = cell.stopping()
    inner_train, holdout = holdout_split(train_set, fraction=stopping.get("holdout_fraction", 0.15),
                                         split_random_state=0)
    embedding = None
    if any(head in PMI_HEADS for head in cell.heads):
        from workbench.method.cooccurrence import count_cooccurrence
        from workbench.method.embed import embed_labels

        embedding = embed_labels(count_cooccurrence(inner_train.labels, inner_train.vocabulary),
                                 options=embedding_options)
    rates, table = {}, []
    for head in cell.heads:
        values, entries = {}, {}

        def attempt(step: int, head: str = head, values: dict = values, entries: dict = entries) -> None:
            rate = _rate(head, cell, step)
            config = head_config(head, seed=cell.seeds[0], epochs=cell.tuning_epochs, batch_size=cell.train["batch_size"],
                                 model=model, learning_rate=rate, validation_fraction=cell.data["validation_fraction"],
                                 split_random_state=0, stopping=stopping,
                                 embedding_dim=None if cell.embedding is None else
                                 embedding.embedding_dim if embedding is not None else cell.embedding["dim"])
            run_dir = folder / f"{head}-lr{rate:g}"
            run = train(inner_train, validation=holdout, config=config, embedding=embedding if head in PMI_HEADS else None,
                        out_dir=run_dir, verbose=0, check_images=False, monitor_validation=True, trunk=trunk)
            values[step] = final_value(run.history)  # the hold-out's: the tuning run's validation images are the hold-out
            stopped = read_json(run_dir / "config.json").get("stopping") or {}
            entries[step] = {"head": head, "learning_rate": rate, "holdout_map_at_100": values[step],
                             "epochs": len(run.history), "epochs_to_convergence": stopped.get("epochs_to_convergence"),
                             "chosen": False, "capped": False}
            table.append(entries[step])

        for step in TUNING_FIRST_STEPS:
            attempt(step)
        while True:
            best = _best_step(values)
            strictly = best is not None and all(values[step] is None or math.isnan(values[step])
                                                or values[step] < values[best] for step in values if step != best)
            if not strictly or min(values) < best < max(values):
                break  # nothing scored, a tie, or an interior best
            further = best + 1 if best == max(values) else best - 1
            if abs(further) > TUNING_MAX_STEPS:
                entries[best]["capped"] = True
                print_function(f"tuning {head}: the best rate {entries[best]['learning_rate']:g} is at the cap "
                               f"({TUNING_MAX_STEPS} steps of ×{TUNING_STEP:g} from the default)")
                break
            attempt(further)
        if best is None:
            rates[head] = default_learning_rate(head, cell)
        else:
            entries[best]["chosen"] = True
            rates[head] = entries[best]["learning_rate"]
        tried = ", ".join(f"{entries[step]['learning_rate']:g}" for step in sorted(values))
        print_function(f"tuned {head}: learning rate {rates[head]:g} (tried {tried})")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_TRAIL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for entry in table:
        writer.writerow({key: "" if entry[key] is None else entry[key] for key in _TRAIL_COLUMNS})
    atomic_write_text(folder / "trail.csv", buffer.getvalue())
    return rates, table


def _analyse_runs(folder: Path, cell: Cell, dataset, trunk=None) -> None:
    """Per-label AP and confident errors of every run of the cell that has none yet (:mod:`workbench.evaluation.analysis`).

    Training counts are of the images the heads trained on (two-stage: the trunk's images left out).
    """
    from workbench.evaluation.analysis import ANALYSIS_FILE, analyse_run
    from workbench.learning.runs import load_run

    train_set, validation_set = dataset.split(validation_fraction=cell.data["validation_fraction"], random_state=0)
    if trunk is not None:
        train_set = trunk.heads_split(train_set)
    for head in cell.heads:
        for seed in cell.seeds:
            run_dir = folder / "runs" / f"{head}-seed{seed}"
            path = run_dir / ANALYSIS_FILE
            if not path.is_file() or read_json(path).get("epochs") != len(read_json(run_dir / "history.json")):
                analyse_run(load_run(run_dir), validation_set, train_set)  # none yet, or the run has trained more since


def _write_ceiling(folder: Path, cell: Cell, dataset, options, *, achieved: int | None) -> None:
    """``ceiling.json``: the decoding ceiling of pmi and random vectors at the k the cell's heads were trained with.

    ``achieved`` is that k (below the grid's when the PMI spectrum has fewer usable
    eigenvalues; the random head then takes the same k). A ceiling computed for another k
    is computed again.
    """
    from workbench.evaluation.ceiling import decoding_ceiling

    path = folder / "ceiling.json"
    # an embedding cell gets the ceiling of pmi and of random vectors at its k (the controls' reference points), an
    # embedding-free cell that of the identity
    names = ["pmi", "random"] if cell.embedding is not None else []
    names += ["identity"] if "identity" in cell.heads else []
    dims = [] if options is None else [achieved or options.embedding_dim]
    if path.is_file():
        rows = read_json(path).get("rows", [])
        if {row["embedding"] for row in rows} == set(names) and all(
                row["dim"] in dims for row in rows if row["embedding"] != "identity"):
            return
    ceiling = decoding_ceiling(dataset, dims=dims, embeddings=names, options=options,
                               validation_fraction=cell.data["validation_fraction"],
                               split_random_state=0) if names else {"config": {}, "rows": []}
    atomic_write_json(path, ceiling)


def _analysed(folder: Path, cell: Cell) -> bool:
    from workbench.evaluation.analysis import ANALYSIS_FILE

    return all((folder / "runs" / f"{head}-seed{seed}" / ANALYSIS_FILE).is_file()
               for head in cell.heads for seed in cell.seeds)


def _cell_trunk(cell: Cell, out_dir: str | Path, dataset, *, print_function: Callable[[str], None]):
    """The two-stage protocol's trunk of ``cell`` (trained now, or loaded); ``None`` end to end."""
    if cell.protocol != "two-stage":
        return None
    from workbench.learning.config import ModelConfig
    from workbench.learning.twostage import prepare_trunk

    model = ModelConfig(image_size=cell.train["image_size"], width=cell.train["width"], depth=cell.train["depth"])
    trunk = cell.trunk_config()

    def trunk_data():  # scenes of its own (read_grid refuses this with a data path): the same generator and seed,
        # drawn on past the cell's images (the scenes of a seed are a prefix of its longer draws), so the trunk's
        # images come from the same distribution as the heads' and are none of them; drawn only to train the trunk
        more = _cell_dataset(cell, num_images=len(dataset) + trunk.images)
        if more.subset(range(len(dataset))).fingerprint() != dataset.fingerprint():
            raise ValueError("The trunk's scenes do not continue the cell's; the scene generator changed under them.")
        return more.subset(range(len(dataset), len(more)), name=f"{dataset.name} (the trunk's own scenes)")

    return prepare_trunk(dataset, folder=Path(out_dir) / "trunks" / cell.trunk_name(), model=model, trunk=trunk,
                         validation_fraction=cell.data["validation_fraction"], split_random_state=0,
                         stopping=cell.stopping(), trunk_data=trunk_data if trunk.images else None, workers=2,
                         print_function=print_function)


def _prepare_trunks(cells: list, out_dir: Path, print_function: Callable[[str], None]) -> None:
    """Train, in this process and with every core, each trunk the pending two-stage cells share and lack.

    Otherwise the first cell to need a trunk trains it on its worker's one thread while the
    cells that share it wait.
    """
    missing = {}
    for cell in cells:
        if cell.protocol == "two-stage" and not (out_dir / "trunks" / cell.trunk_name() / "trunk.json").is_file():
            missing.setdefault(cell.trunk_name(), cell)
    if not missing:
        return
    from workbench.learning.startup import import_keras_quietly

    import_keras_quietly()
    for name, cell in missing.items():
        began = time.perf_counter()
        try:
            _cell_trunk(cell, out_dir, _cell_dataset(cell), print_function=print_function)
        except Exception as error:  # noqa: BLE001 - its cells try again, and each reports the failure
            print_function(f"trunk {name}: failed ({type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]})")
            continue
        print_function(f"trunk {name}: ready in {time.perf_counter() - began:.1f} s")


def run_cell(settings: dict, out_dir: str, *, threads: int | None = None, devices=None) -> dict:
    """Run (or resume) one cell; a top-level function so that Dask workers can run it.

    Returns
    -------
    dict
        ``{"cell", "status": "finished" | "failed", "seconds", "error"}``; a failure is
        reported, never raised, so one cell cannot stop the others.
    """
    _limit_threads(threads)
    from workbench.learning.startup import import_keras_quietly

    import_keras_quietly()  # also drops TensorFlow's retracing notices
    began = time.perf_counter()
    cell = Cell.from_settings(settings)
    folder = cell_folder(out_dir, cell)
    folder.mkdir(parents=True, exist_ok=True)
    record = {**cell.settings(), "status": "running"}
    earlier = 0.0
    if (folder / "cell.json").is_file():  # keep what an earlier run of the cell found (its tuned rates)
        before = read_json(folder / "cell.json")
        record.update({key: before[key] for key in ("learning_rates", "tuning") if key in before})
        earlier = float(before.get("seconds") or 0.0)  # the cell's time over every run of it
    atomic_write_json(folder / "cell.json", record)
    log = open(folder / "log.txt", "a", encoding="utf-8")

    def say(line: str) -> None:
        log.write(line + "\n")
        log.flush()

    try:
        from workbench.learning.config import ModelConfig
        from workbench.experiments.compare import compare

        if devices is not None:
            from workbench.learning.devices import use_devices

            use_devices(devices, batch_size=cell.train["batch_size"])
        dataset = _cell_dataset(cell)
        model = ModelConfig(image_size=cell.train["image_size"], width=cell.train["width"], depth=cell.train["depth"])
        options = cell.embedding_options()
        trunk = _cell_trunk(cell, out_dir, dataset, print_function=say)
        rates = {head: default_learning_rate(head, cell) for head in cell.heads}
        if cell.train["tune_lr"]:
            train_set, _ = dataset.split(validation_fraction=cell.data["validation_fraction"], random_state=0)
            if trunk is not None:
                train_set = trunk.heads_split(train_set)
            rates, table = tune_learning_rates(train_set, cell=cell, folder=folder / "tuning", model=model,
                                               embedding_options=options, print_function=say, trunk=trunk)
            record["tuning"] = table
        record["learning_rates"] = rates
        atomic_write_json(folder / "cell.json", record)
        compared = compare(dataset, out_dir=folder, embedding=options, heads=cell.heads, seeds=cell.seeds,
                           epochs=cell.train["epochs"], batch_size=cell.train["batch_size"], model=model,
                           learning_rates=rates, validation_fraction=cell.data["validation_fraction"],
                           split_random_state=0, workers=1, verbose=1, print_function=say, stopping=cell.stopping(),
                           trunk=trunk)
        _write_ceiling(folder, cell, dataset, options, achieved=compared["config"]["embedding_dim"])
        _analyse_runs(folder, cell, dataset, trunk)
        seconds = round(time.perf_counter() - began, 3)
        atomic_write_json(folder / "cell.json", {**record, "status": "complete", "seconds": round(earlier + seconds, 3)})
        return {"cell": cell.name, "status": "finished", "seconds": seconds, "error": None}
    except Exception as error:  # noqa: BLE001 - one failed cell is reported, the others go on
        message = (str(error).strip().splitlines() or [type(error).__name__])[0]
        say(f"failed: {type(error).__name__}: {message}")
        atomic_write_json(folder / "cell.json", {**record, "status": "failed", "error": message})
        return {"cell": cell.name, "status": "failed", "seconds": round(time.perf_counter() - began, 3),
                "error": message}
    finally:
        log.close()


def _git_commit() -> str | None:
    """The commit of the workbench's checkout (``None`` outside git)."""
    import subprocess

    import workbench

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(workbench.__file__).parent, text=True,
                              capture_output=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _provenance(seconds: float | None = None) -> dict:
    import platform

    import workbench

    commit = _git_commit()
    memory = None
    try:
        memory = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    return {"version": workbench.__version__, "git_commit": commit, "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "memory_gib": memory, "seconds": seconds}


def run_experiment(grid: dict, *, out_dir: str | Path, cores: int | None = None, scheduler: str | None = None,
                   tune_lr: bool | None = None, devices=None, print_function: Callable[[str], None] = print) -> dict:
    """Run every cell of a grid that is not finished, then write ``DIR/results.csv`` and ``DIR/results.json``.

    Parameters
    ----------
    grid : dict
        From :func:`workbench.experiments.grid.read_grid` or :func:`~workbench.experiments.grid.parse_grid`.
    out_dir : path
        New, empty, or an earlier output of an experiment (it resumes; cells of another
        grid are kept, and left out of this grid's results).
    cores : int, optional
        Cells run at once (default: the machine's cores). ``1`` runs them in this
        process, one after another.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); ``cores`` is then
        ignored.
    tune_lr : bool, optional
        Overrides the grid's ``[train] tune_lr``.
    devices : int or "all", optional
        Each cell trains data-parallel on this many devices (JAX backend; see
        :func:`workbench.learning.devices.use_devices`): give ``cores=1`` (or one worker
        per host), so that cells do not share devices.

    Returns
    -------
    dict
        The content of ``results.json`` (:func:`workbench.experiments.results.collect_results`).
    """
    from workbench.experiments.results import collect_results, write_results

    began = time.perf_counter()
    cores = _checks.integer(cores if cores is not None else (os.cpu_count() or 1), "cores")
    if tune_lr is not None:
        grid = {**grid, "train": {**grid["train"], "tune_lr": bool(tune_lr)}}
    cells = expand_cells(grid)
    out_dir = check_output_folder(out_dir, marker=EXPERIMENT_MARKER, command="workbench experiment")
    states = {cell.name: cell_state(out_dir, cell) for cell in cells}  # every refusal before anything is written
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = read_json(out_dir / EXPERIMENT_MARKER) if (out_dir / EXPERIMENT_MARKER).is_file() else {}
    earlier = earlier if isinstance(earlier, dict) else {}
    # the wall-clock time of every invocation (a grid split across sessions adds them up), and the code it ran
    invocations = [*(earlier.get("invocations") or []),
                   {"began": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": 0.0, "cells_finished": 0,
                    "git_commit": _git_commit()}]
    record = {"format": "workbench-experiment", "grid": {key: grid[key] for key in ("data", "embedding", "train")},
              "cells": [cell.name for cell in cells], "invocations": invocations}
    clock = InvocationClock(out_dir / EXPERIMENT_MARKER, record, began=began)
    clock.write()
    if "text" in grid:
        atomic_write_text(out_dir / "grid.toml", grid["text"])
    pending = [cell for cell in cells if states[cell.name] != "finished"]
    for cell in cells:
        if states[cell.name] == "finished":
            print_function(f"{cell.name}: finished earlier, skipped")
    print_function(f"{len(cells)} cell(s), {len(pending)} to run "
                   f"({'on ' + scheduler if scheduler else f'{min(cores, max(len(pending), 1))} at a time'}).")
    reports = []
    with clock:
        _prepare_trunks(pending, out_dir, print_function)
        _run_pending(pending, out_dir, cells, record, clock, reports, scheduler=scheduler, cores=cores, devices=devices,
                     print_function=print_function)
    results = collect_results(out_dir, cells, grid=record["grid"],
                              provenance=_provenance(round(time.perf_counter() - began, 3)))
    results["failed"] = [report for report in reports if report["status"] == "failed"]
    clock.write(cells_finished=len(reports))
    write_results(out_dir, results)
    return results


def _run_pending(pending: list, out_dir: Path, cells: list, record: dict, clock: "InvocationClock", reports: list, *,
                 scheduler, cores: int, devices, print_function: Callable[[str], None]) -> None:
    """Run the pending cells (here, one after another, or on Dask), rewriting the results after each."""
    from workbench.experiments.results import collect_results, write_results

    def finished(report: dict) -> None:
        reports.append(report)
        clock.write(cells_finished=len(reports))
        line = f"{report['cell']}: {report['status']} in {report['seconds']:.1f} s"
        print_function(line + (f" ({report['error']})" if report["error"] else ""))
        write_results(out_dir, collect_results(out_dir, cells, grid=record["grid"], provenance=_provenance()))

    if pending and scheduler is None and cores == 1:
        for cell in pending:
            finished(run_cell(cell.settings(), str(out_dir), devices=devices))
    elif pending:
        from dask.distributed import as_completed

        from workbench._cluster import dask_client

        with dask_client(scheduler, workers=min(cores, len(pending))) as client:
            futures = [client.submit(run_cell, cell.settings(), str(out_dir.resolve()), threads=1, devices=devices,
                                     pure=False, key=f"cell-{cell.name}-{time.time_ns()}") for cell in pending]
            for future in as_completed(futures):
                finished(future.result())


class InvocationClock:
    """Keeps an invocation's wall-clock seconds in ``experiment.json``: after every cell, and every ``interval`` seconds
    while it runs (a daemon thread), so an invocation stopped by a kill or a session's end is known to that interval.

    Parameters
    ----------
    path : Path
        ``experiment.json``.
    record : dict
        Its content; the last of ``record["invocations"]`` is this invocation's (``seconds``, ``cells_finished``).
    began : float
        ``time.perf_counter()`` when the invocation began.
    interval : float, default=60
    """

    def __init__(self, path: Path, record: dict, *, began: float, interval: float = 60.0):
        import threading

        self.path, self.record, self.began, self.interval = Path(path), record, began, float(interval)
        self._lock, self._stop, self._thread = threading.Lock(), threading.Event(), None

    def write(self, *, cells_finished: int | None = None) -> None:
        with self._lock:
            current = self.record["invocations"][-1]
            current["seconds"] = round(time.perf_counter() - self.began, 3)
            if cells_finished is not None:
                current["cells_finished"] = cells_finished
            atomic_write_json(self.path, self.record)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.write()
            except OSError:  # a full disk: the next beat or the next cell tries again
                pass

    def __enter__(self) -> "InvocationClock":
        import threading

        self._thread = threading.Thread(target=self._beat, name="invocation-clock", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.write()
