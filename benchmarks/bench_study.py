"""The study's protocol levers at C ≈ 1,500–1,870: images/s of each, against a baseline measured in the same run.

The study of issue 22 trains, at ``C`` ≥ 1,500 labels, every head of
:data:`GRID_HEADS` at ``k`` ∈ {16, 64, 256} with 5 seeds to convergence, learning rates
tuned per head. This benchmark measures what each lever does to the training
throughput on this machine and projects the time of that grid for every combination
of levers:

``backend``
    ``KERAS_BACKEND=jax`` instead of ``tensorflow`` (CPU).
``image size``
    24 or 16 pixels instead of 32 (the glyphs shrink with the image: see the data card's
    look-alike glyphs for what a smaller image costs in labels no model can tell apart).
``trunk width``
    8 filters in the first block instead of 16 (every later block doubles them).
``decoded-image caching``
    the pipeline reads PNG files, decoded every epoch (``files-uncached``) or once into the
    decoded-image cache (``files-cached``, :data:`workbench.learning.feeding.DECODE_CACHE_BYTES`),
    instead of in-memory images (the baseline: a grid generates its scenes in memory).
``two-stage``
    **a two-stage protocol**: a trunk is trained once (with the sigmoid head, on images
    apart from the heads' training and validation images), its pooled features are
    computed once for every image, and each head is then trained on the cached
    features: the same head layers, loss, batches built from the sparse labels
    (``LabelBatches``; ``--head-batch-size`` images a batch, 1,024 by default: a head on
    features does little work a step, so the per-step overhead decides its speed; the
    measurement repeats the features to at least 16 steps an epoch) and
    validation callback (``EvaluationCallback``) as in the pipeline, with the trunk left out. *What it cannot tell*: every head shares one
    fixed representation, learned for another objective; whether a head's targets
    (PMI sums, one-hot rows, sigmoid outputs) shape a better trunk, part of the paper's
    claim, is not measured by it, only which head reads the shared features best.

Every measurement runs in a process of its own (the backend is chosen at import), in
this order: baseline, every lever, baseline again; ratios are against the mean of the
two baseline measurements of the same repeat (a busy machine slows both alike; the
load average is printed before and after). Each process trains two heads on
``--images`` synthetic images (random pixels, 1–4 of ``--labels`` labels each: the
throughput does not depend on the content) for ``--epochs`` epochs with
:func:`workbench.learning.training.train`: ``pmi`` (``k`` outputs; every head whose
output is ``k`` wide costs the same) and ``sigmoid`` (``C`` outputs; identity, learned
and sigmoid-lowrank cost about the same when a trunk is in front). Images/s is of the
epochs after the first (tracing and compilation excluded); evaluation is measured
apart, as seconds per validation image, since it scales with the validation split: in
full (every metric, as the validation split is scored) and by MAP@100 alone (as the
stopping rule scores the hold-out and a tuning run its validation images).

The projected grid time (:func:`project_grid`) adds, for every run of the grid, its
epochs × (training images / images/s + scored images × evaluation seconds per image),
where a run trains on the training split less the hold-out its stopping rule watches and
scores the validation split (in full) and that hold-out (MAP@100 alone) after every epoch;
the learning-rate tuning of every head in every cell (3 rates, each a run as long, scoring
the hold-out only); and for the two-stage protocol the trunk's training (``--trunk-epochs`` on
``--trunk-images``) and one pass of feature extraction. ``--grid-epochs`` is every run's
length: the cap, where a stopping rule ends runs sooner. Combinations of levers are projected from the single-lever ratios
(multiplied; decoded-image caching is measured but not combined: a grid generates its
scenes in memory); the chosen protocol is the one within ``--budget-hours`` that prefers
end-to-end training, then larger images, then the wider trunk, and a chosen combination
of several levers is then measured as one and projected again. ``--measurements`` projects
again from an earlier run's ``--out`` (other grid sizes) without measuring.
The grid runs its cells on the same two cores (two single-threaded workers); the
measurement is one process with the cores as threads, taken as the same throughput.

    .venv/bin/python benchmarks/bench_study.py [--labels 1870] [--images 3072] [--epochs 3]
        [--grid-images 100000] [--grid-epochs 10] [--trunk-epochs 15] [--out FILE.json]
    .venv/bin/python benchmarks/bench_study.py --measurements FILE.json --grid-images 60000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

import numpy as np  # noqa: E402

#: The heads of the study's grid and the cost class of each: ``k`` outputs, ``C`` outputs, or a
#: ``k``-wide bottleneck before ``C`` outputs.
GRID_HEADS = {"pmi": "k", "shuffled": "k", "random-matched": "k", "learned": "bottleneck", "sigmoid-lowrank": "bottleneck",
              "identity": "C", "sigmoid": "C"}
#: Each lever: the settings it changes from the baseline.
LEVERS = {
    "baseline": {},
    "jax": {"backend": "jax"},
    "size-24": {"image_size": 24},
    "size-16": {"image_size": 16},
    "width-8": {"width": 8},
    "files-cached": {"source": "files"},
    "files-uncached": {"source": "files-uncached"},
    "two-stage": {"protocol": "two-stage"},
}
BASELINE = {"backend": "tensorflow", "image_size": 32, "width": 16, "depth": 4, "source": "memory", "protocol": "end-to-end"}
#: Lever groups of the combinations (one choice from each). Decoded-image caching is measured but not combined:
#: a grid generates its scenes in memory, so its images are never decoded (the caching is for data on disk).
AXES = {"backend": ("baseline", "jax"), "image size": ("baseline", "size-24", "size-16"), "trunk width": ("baseline", "width-8"),
        "protocol": ("baseline", "two-stage")}
#: Learning rates each head tries in every cell (the first sweep of ``tune_lr``; an edge adds more).
TUNING_RATES = 3
BUDGET_HOURS = 2.0


# -- the projection -----------------------------------------------------------------------------------------
def grid_runs(*, dims=(16, 64, 256), seeds: int = 5, heads=tuple(GRID_HEADS)) -> dict:
    """Runs of the grid per cost class (``k``, ``bottleneck``, ``C``), and tuning runs per class.

    Heads whose cost class is ``k`` or ``bottleneck`` are trained at every ``k``, the others
    once; every run with every seed. Tuning tries :data:`TUNING_RATES` rates per head and cell
    with one seed, each a run as long as the cell's.
    """
    runs, tuning = {"k": 0, "bottleneck": 0, "C": 0}, {"k": 0, "bottleneck": 0, "C": 0}
    for head in heads:
        kind = GRID_HEADS[head]
        cells = len(dims) if kind in ("k", "bottleneck") else 1
        runs[kind] += cells * seeds
        tuning[kind] += cells * TUNING_RATES
    return {"runs": runs, "tuning": tuning}


def project_grid(rates: dict, *, images: int, validation_fraction: float, epochs: int, runs: dict,
                 holdout_fraction: float = 0.15, trunk: dict | None = None, tuning_epochs: float | None = None) -> dict:
    """Projected seconds of the grid from measured rates.

    Every run trains on the training split less its hold-out (``holdout_fraction`` of it,
    watched by the stopping rule) for ``epochs`` epochs (the cap: a run stopped sooner takes
    less), scoring the validation split and the hold-out after each; every tuning run is
    trained the same way on the same images, scoring the hold-out only.

    Parameters
    ----------
    rates : dict
        Per cost class (``k``, ``bottleneck``, ``C``): ``train_ips`` (training images per
        second), ``eval_spi`` (seconds per image of a full evaluation, the validation split's)
        and ``holdout_spi`` (seconds per image of MAP@100 alone, the hold-out's; when absent,
        measurements made before the hold-out was scored by MAP@100 alone, ``eval_spi``).
    images : int
        Images of the grid's data set (split into training and validation).
    validation_fraction : float
    epochs : int
        Epochs of every run (converged).
    runs : dict
        :func:`grid_runs`.
    holdout_fraction : float, default=0.15
        0: no hold-out (runs train on the whole training split).
    trunk : dict, optional
        The two-stage protocol's first stage: ``images``, ``epochs``, ``train_ips``,
        ``eval_spi`` (the trunk's own validation, on ``validation_fraction`` of its images)
        and ``features_ips`` (feature extraction, over the grid's images).
    tuning_epochs : float, optional
        Epochs of every tuning run (default: ``epochs``; a grid's ``tuning_epochs`` caps them apart).

    Returns
    -------
    dict
        ``runs``, ``tuning``, ``trunk`` and ``total`` seconds.
    """
    num_validation = round(validation_fraction * images)
    num_train = images - num_validation
    holdout = round(holdout_fraction * num_train)
    trained = num_train - holdout
    seconds = {"runs": 0.0, "tuning": 0.0, "trunk": 0.0}
    for kind, count in runs["runs"].items():
        if count:
            holdout_spi = rates[kind].get("holdout_spi", rates[kind]["eval_spi"])
            seconds["runs"] += count * epochs * (trained / rates[kind]["train_ips"]
                                                 + num_validation * rates[kind]["eval_spi"] + holdout * holdout_spi)
    for kind, count in runs["tuning"].items():
        if count:
            holdout_spi = rates[kind].get("holdout_spi", rates[kind]["eval_spi"])
            seconds["tuning"] += count * (epochs if tuning_epochs is None else tuning_epochs) * (
                trained / rates[kind]["train_ips"] + holdout * holdout_spi)
    if trunk is not None:
        trunk_validation = round(validation_fraction * trunk["images"])
        seconds["trunk"] = (trunk["epochs"] * ((trunk["images"] - trunk_validation) / trunk["train_ips"]
                                               + trunk_validation * trunk["eval_spi"])
                            + images / trunk["features_ips"])
    seconds["total"] = seconds["runs"] + seconds["tuning"] + seconds["trunk"]
    return seconds


# -- one measurement (a child process) -------------------------------------------------------------------
def _synthetic(num_images: int, *, num_labels: int, image_size: int, random_state: int = 0):
    from workbench.data.datasets import MultiLabelDataset
    from workbench.data.labels import Vocabulary

    rng = np.random.default_rng(random_state)
    images = rng.integers(0, 256, (num_images, image_size, image_size, 3), dtype=np.uint8)
    names = tuple(f"label{c:04d}" for c in range(num_labels))
    label_sets = tuple(tuple(names[c] for c in sorted(rng.choice(num_labels, rng.integers(1, 5), replace=False)))
                       for _ in range(num_images))
    return MultiLabelDataset(image_paths=tuple(f"images/{n:06d}.png" for n in range(num_images)), label_sets=label_sets,
                             vocabulary=Vocabulary(names), images=images, name="synthetic")


def _on_disk(dataset, root: Path):
    from PIL import Image

    from workbench.data.datasets import MultiLabelDataset

    (root / "images").mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(dataset.images):
        Image.fromarray(image).save(root / dataset.image_paths[n])
    return MultiLabelDataset(image_paths=dataset.image_paths, label_sets=dataset.label_sets, vocabulary=dataset.vocabulary,
                             root=root, name="synthetic (files)")


def _rates(history, num_train: int, num_validation: int) -> dict:
    later = history[1:]
    return {"train_ips": num_train / statistics.mean(r["seconds"] for r in later),
            "eval_spi": statistics.mean(r["eval_seconds"] for r in later) / num_validation,
            "first_epoch_ips": num_train / history[0]["seconds"]}


def _map_alone_spi(model, inputs, labels, vectors) -> float:
    """Seconds per image of scoring ``inputs`` by MAP@100 alone (the hold-out's evaluation): the best of two, after one untimed."""
    from workbench.learning.callbacks import EvaluationCallback

    callback = EvaluationCallback(inputs=inputs, labels=labels, vectors=vectors, verbose=0, measure="map")
    callback.set_model(model)
    callback.evaluate_model()  # traced once, not timed
    timings = []
    for _ in range(2):
        began = time.perf_counter()
        callback.evaluate_model()
        timings.append(time.perf_counter() - began)
    return min(timings) / labels.shape[0]


def _embedding(vocabulary, dim: int):
    from workbench.method.embedding import LabelEmbedding

    vectors = np.random.default_rng(1).standard_normal((len(vocabulary), dim)).astype(np.float32)
    return LabelEmbedding(vocabulary=vocabulary, vectors=vectors, eigenvalues=np.ones(dim), settings={"kind": "benchmark"})


def _two_stage(train_set, validation, *, config, dim: int, head_batch_size: int) -> dict:
    """Feature extraction and heads on cached features: images/s and evaluation seconds per image."""
    import keras
    import scipy.sparse as sp

    from workbench.learning.callbacks import EvaluationCallback
    from workbench.learning.config import DEFAULT_LEARNING_RATES
    from workbench.learning.feeding import LabelBatches
    from workbench.learning.models import build_model, compile_model
    from workbench.learning.twostage import FeatureSource

    model = build_model(config.model, head="sigmoid", num_labels=train_set.num_labels, random_state=0)
    trunk = keras.Model(model.input, model.get_layer("pool").output)
    trunk.predict(validation.images[:64], batch_size=256, verbose=0)  # traced once, not timed
    began = time.perf_counter()
    features = trunk.predict(train_set.images, batch_size=256, verbose=0)
    features_ips = len(train_set) / (time.perf_counter() - began)
    validation_features = trunk.predict(validation.images, batch_size=256, verbose=0)
    # at least 16 steps an epoch, whatever the batch: the features repeated (a head's speed does not depend on them)
    copies = max(1, -(-16 * head_batch_size // len(features)))
    features = np.tile(features, (copies, 1))
    labels = sp.vstack([train_set.labels] * copies, format="csr")
    vectors = _embedding(train_set.vocabulary, dim).vectors
    heads = {}
    for head, kind in (("pmi", "k"), ("learned", "bottleneck"), ("sigmoid", "C")):
        keras.backend.clear_session()
        head_vectors = vectors if kind == "k" else None
        # the package's head on features (workbench.learning.twostage), as the study's runs build it
        network = build_model(config.model, head=head, embedding_dim=None if kind == "C" else dim,
                              num_labels=train_set.num_labels, num_features=features.shape[1], random_state=0)
        compile_model(network, head=head, learning_rate=DEFAULT_LEARNING_RATES[head])
        batches = LabelBatches(FeatureSource(features), labels, vectors=head_vectors, batch_size=head_batch_size,
                               shuffle=True, workers=config.workers)
        callback = EvaluationCallback(inputs=validation_features, labels=validation.labels, vectors=head_vectors, verbose=0)
        network.fit(batches, epochs=config.epochs, callbacks=[callback], verbose=0)
        num_train = len(batches) * head_batch_size
        heads[kind] = {**_rates(callback.history, num_train, len(validation)),
                       "holdout_spi": _map_alone_spi(network, validation_features, validation.labels, head_vectors)}
    return {"features_ips": features_ips, "heads": heads, "num_features": int(features.shape[1])}


def measure(spec: dict) -> dict:
    """One lever's measurement (in this process): end-to-end rates of a ``k`` and a ``C`` head, or the two stages."""
    import keras

    import workbench.learning.feeding as feeding
    from workbench.learning.config import ModelConfig, TrainConfig
    from workbench.learning.training import train

    settings = {**BASELINE, **spec["settings"]}
    data = _synthetic(spec["images"] + spec["validation_images"], num_labels=spec["labels"], image_size=settings["image_size"])
    train_set, validation = data.subset(range(spec["images"])), data.subset(range(spec["images"], len(data)))
    model = ModelConfig(image_size=settings["image_size"], width=settings["width"], depth=settings["depth"])
    config = dict(epochs=spec["epochs"], batch_size=spec["batch_size"], workers=2, model=model)
    result = {"backend": keras.backend.backend(), "settings": settings}
    if settings["protocol"] == "two-stage":
        result.update(_two_stage(train_set, validation, config=TrainConfig(head="sigmoid", **config), dim=spec["dim"],
                                 head_batch_size=spec["head_batch_size"]))
        return result
    if settings["source"] == "files-uncached":
        feeding.DECODE_CACHE_BYTES = 0
    embedding = _embedding(data.vocabulary, spec["dim"])
    rates = {}
    with tempfile.TemporaryDirectory() as folder:
        source = _on_disk(train_set, Path(folder) / "data") if settings["source"] != "memory" else train_set
        for head, kind in (("pmi", "k"), ("sigmoid", "C")):
            keras.backend.clear_session()
            run = train(source, validation=validation, config=TrainConfig(head=head, **config),
                        embedding=embedding if head == "pmi" else None, out_dir=Path(folder) / head, verbose=0,
                        allow_overlap=True)
            num_train = len(train_set) // spec["batch_size"] * spec["batch_size"]
            rates[kind] = {**_rates(run.history, num_train, len(validation)),
                           "holdout_spi": _map_alone_spi(run.model, validation.images, validation.labels,
                                                         None if run.embedding is None else run.embedding.vectors)}
    rates["bottleneck"] = dict(rates["C"])  # a k-wide layer before the C outputs: the trunk dominates
    result["heads"] = rates
    return result


def _child(name: str, settings: dict, spec: dict) -> dict:
    env = {**os.environ, "KERAS_BACKEND": settings.get("backend", BASELINE["backend"]), "TF_CPP_MIN_LOG_LEVEL": "3"}
    payload = json.dumps({**spec, "settings": settings})
    began = time.perf_counter()
    completed = subprocess.run([sys.executable, __file__, "--child", payload], capture_output=True, text=True, env=env)
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise RuntimeError(f"lever {name} failed (status {completed.returncode}): {completed.stderr[-2000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["wall_seconds"] = time.perf_counter() - began
    return result


def actual_time(folder: Path) -> dict:
    """What a grid's run took: every invocation's wall-clock (``experiment.json``), its runs, tuning runs and trunk."""
    import csv

    record = json.loads((folder / "experiment.json").read_text())
    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    cells = [json.loads(path.read_text()) for path in sorted((folder / "cells").glob("*/cell.json"))]
    trunks = [json.loads(path.read_text()) for path in sorted((folder / "trunks").glob("*/trunk.json"))]
    invocations = record.get("invocations") or []
    tuning_epochs = [len(json.loads(path.read_text())) for path in sorted((folder / "cells").glob("*/tuning/*/history.json"))]
    return {"hours": sum(entry.get("seconds") or 0.0 for entry in invocations) / 3600, "invocations": len(invocations),
            "finished": bool(cells) and all(cell.get("status") == "complete" for cell in cells)
            and len(cells) == len(record.get("cells", [])),
            "runs": len(rows), "mean_epochs": statistics.mean(int(row["epochs"]) for row in rows) if rows else 0.0,
            "cap": max((cell["train"]["epochs"] for cell in cells), default=None),
            "tuning_runs": sum(len(cell.get("tuning") or []) for cell in cells),
            "tuning_mean_epochs": statistics.mean(tuning_epochs) if tuning_epochs else None,
            "trunk_seconds": sum(trunk.get("seconds") or 0.0 for trunk in trunks),
            "trunk_epochs": max((trunk.get("epochs_trained") or 0 for trunk in trunks), default=0),
            "trunk_images": sum(trunk.get("num_trunk_images") or 0 for trunk in trunks),
            "process": process_time(folder)}


def process_time(folder: Path) -> dict:
    """Seconds spent per part, summed over every run's and tuning run's ``history.json`` (both workers together).

    ``runs_train``, ``runs_validation`` (the full evaluation), ``runs_holdout`` (the stopping rule's
    scoring; recorded since the hold-out is timed, so 0 for runs made before), ``tuning_train``,
    ``tuning_evaluation`` (a tuning run's validation images are the hold-out).
    """
    parts = {"runs": {"runs_train": "seconds", "runs_validation": "eval_seconds", "runs_holdout": "holdout_eval_seconds"},
             "tuning": {"tuning_train": "seconds", "tuning_evaluation": "eval_seconds"}}
    totals = {part: 0.0 for keys in parts.values() for part in keys}
    for kind, keys in parts.items():
        for path in sorted((folder / "cells").glob(f"*/{kind}/*/history.json")):
            for record in json.loads(path.read_text()):
                for part, key in keys.items():
                    totals[part] += record.get(key) or 0.0
    return totals


def project_as_run(choice: dict, results: dict, baseline: dict, grid: dict, actual: dict, *, trunk_images: int,
                   trunk_epochs: int) -> dict:
    """The chosen protocol projected again with what a run did (:func:`actual_time`).

    ``planned``: the grid as planned; ``epochs``: at its runs' mean epochs, the plan's tuning
    runs and trunk; ``as_run``: also its number of tuning runs (spread over the cost classes in
    the plan's shares) at their mean epochs (``tuning_mean_epochs``; when absent, the runs'),
    and its trunk's epochs and images. Each is :func:`project_grid`'s dict;
    the trunk's rates are the chosen combination's own (:func:`combination_rates`).
    """
    rates, trunk = combination_rates(choice, results, baseline)
    planned = grid["runs"]["tuning"]
    total = sum(planned.values())
    tuning = {kind: count * actual["tuning_runs"] / total for kind, count in planned.items()} if total else dict(planned)
    plan_trunk = None if trunk is None else {**trunk, "images": trunk_images, "epochs": trunk_epochs}
    run_trunk = None if trunk is None else {**trunk, "images": actual["trunk_images"] or trunk_images,
                                            "epochs": actual["trunk_epochs"] or trunk_epochs}
    return {"planned": project_grid(rates, **grid, trunk=plan_trunk),
            "epochs": project_grid(rates, **{**grid, "epochs": actual["mean_epochs"]}, trunk=plan_trunk),
            "as_run": project_grid(rates, **{**grid, "epochs": actual["mean_epochs"],
                                             "runs": {**grid["runs"], "tuning": tuning}}, trunk=run_trunk,
                                   tuning_epochs=actual.get("tuning_mean_epochs"))}


def _load() -> str:
    try:
        return " ".join(f"{value:.2f}" for value in os.getloadavg())
    except OSError:
        return "unknown"


# -- combining levers -------------------------------------------------------------------------------------
def _ratios(result: dict, baseline: dict) -> dict:
    """Per cost class, the lever's training images/s and evaluation seconds relative to the baseline's."""
    if "features_ips" in result:
        return {}
    ratios = {}
    for kind in baseline["heads"]:
        lever, base = result["heads"][kind], baseline["heads"][kind]
        ratios[kind] = {"train": lever["train_ips"] / base["train_ips"], "eval": lever["eval_spi"] / base["eval_spi"]}
        if "holdout_spi" in lever and "holdout_spi" in base:
            ratios[kind]["holdout"] = lever["holdout_spi"] / base["holdout_spi"]
    return ratios


def combination_rates(choice: dict, results: dict, baseline: dict) -> tuple[dict, dict | None]:
    """Rates of a combination of levers, from the single-lever ratios; the two-stage trunk when chosen.

    ``choice`` maps every axis of :data:`AXES` to one of its levers. End-to-end: the
    baseline's rates times each chosen lever's ratio. Two-stage: the heads' rates on
    features as measured (they do not depend on the trunk's levers), and a trunk whose
    rates are the end-to-end ``C`` head's under the other levers.
    """
    end_to_end = {kind: dict(values) for kind, values in baseline["heads"].items()}
    for axis, lever in choice.items():
        if axis == "protocol" or lever == "baseline":
            continue
        for kind, ratio in _ratios(results[lever], baseline).items():
            end_to_end[kind]["train_ips"] *= ratio["train"]
            end_to_end[kind]["eval_spi"] *= ratio["eval"]
            if "holdout_spi" in end_to_end[kind]:
                end_to_end[kind]["holdout_spi"] *= ratio.get("holdout", ratio["eval"])
    if choice.get("protocol") != "two-stage":
        return end_to_end, None
    stage = results["two-stage"]
    features_ratio = end_to_end["C"]["train_ips"] / baseline["heads"]["C"]["train_ips"]
    trunk = {"train_ips": end_to_end["C"]["train_ips"], "eval_spi": end_to_end["C"]["eval_spi"],
             "features_ips": stage["features_ips"] * features_ratio}
    return {kind: dict(values) for kind, values in stage["heads"].items()}, trunk


def _report_actual(args, chosen, results: dict, baseline: dict, grid: dict, trunk_images: int) -> dict:
    """Print a finished (or stopped) grid's actual wall-clock time beside its projections; return the figures."""
    actual = actual_time(args.actual)
    # nothing fits the budget: compare with the two-stage protocol alone
    choice = chosen[0] if chosen else {**{axis: "baseline" for axis in AXES}, "protocol": "two-stage"}
    again = project_as_run(choice, results, baseline, grid, actual, trunk_images=trunk_images, trunk_epochs=args.trunk_epochs)
    planned = again["planned"]
    print(f"\nActual ({args.actual}): {actual['hours']:.2f} h wall-clock over {actual['invocations']} invocation(s) of "
          f"workbench experiment ({'every cell finished' if actual['finished'] else 'NOT every cell finished'}); "
          f"{actual['runs']} runs, {actual['mean_epochs']:.1f} epochs a run on average (the cap "
          f"{actual['cap']}), {actual['tuning_runs']} tuning runs ({actual['tuning_mean_epochs'] or 0:.1f} epochs on "
          f"average); the trunk {actual['trunk_epochs']} epochs, "
          f"{actual['trunk_seconds'] / 60:.1f} min on {actual['trunk_images']} images.")
    figures = {**actual, "choice": choice, "planned_hours": planned["total"] / 3600}
    line = f"  {_describe(choice)}: projected {planned['total'] / 3600:.2f} h as planned ({args.grid_epochs} epochs a run"
    line += f", {sum(grid['runs']['tuning'].values())} tuning runs"
    line += f", the trunk {args.trunk_epochs} epochs)" if choice["protocol"] == "two-stage" else ")"
    if actual["mean_epochs"]:
        run = again["as_run"]
        line += (f"; {again['epochs']['total'] / 3600:.2f} h at the actual {actual['mean_epochs']:.1f} epochs a run; "
                 f"{run['total'] / 3600:.2f} h as run (its epochs, tuning runs and trunk: runs {run['runs'] / 3600:.2f} h, "
                 f"tuning {run['tuning'] / 3600:.2f} h, trunk and features {run['trunk'] / 3600:.2f} h, the trunk "
                 f"measured {actual['trunk_seconds'] / 3600:.2f} h); actual / as run = {actual['hours'] * 3600 / run['total']:.2f}")
        figures.update({"epochs_hours": again["epochs"]["total"] / 3600, "as_run_hours": run["total"] / 3600})
    print(line)
    hours = {part: seconds / 3600 for part, seconds in actual["process"].items()}
    print(f"  process time in the runs' histories (the workers together): runs {hours['runs_train']:.2f} h training, "
          f"{hours['runs_validation']:.2f} h scoring the validation split, {hours['runs_holdout']:.2f} h the hold-out"
          f"{'' if hours['runs_holdout'] else ' (not recorded: runs made before it was timed)'}; tuning "
          f"{hours['tuning_train']:.2f} h training, {hours['tuning_evaluation']:.2f} h scoring")
    return figures


def _holdout_ms(rates: dict) -> str:
    """Milliseconds per 1,000 images of MAP@100 alone; "—" for measurements made before it was measured apart."""
    return "—" if "holdout_spi" not in rates else f"{1e6 * rates['holdout_spi']:.1f}"


def _describe(choice: dict) -> str:
    parts = [LEVERS_TEXT[lever] for axis, lever in choice.items() if lever != "baseline"]
    return ", ".join(parts) or "baseline"


LEVERS_TEXT = {"jax": "JAX", "size-24": "24 px", "size-16": "16 px", "width-8": "width 8", "files-cached": "PNG files cached",
               "files-uncached": "PNG files uncached", "two-stage": "two-stage (trunk trained once, heads on its features)"}
#: Preference among combinations that fit the budget: end-to-end (it measures more), then the largest images
#: (fewer look-alike glyphs), the wider trunk, then the fastest.
_PREFERENCE = (("protocol", "baseline"), ("image size", "baseline"), ("image size", "size-24"), ("trunk width", "baseline"))


def choose(projections: list[tuple[dict, float]], budget_seconds: float):
    """The preferred combination among those projected within ``budget_seconds`` (``None`` when none fits)."""
    fitting = [(choice, seconds) for choice, seconds in projections if seconds <= budget_seconds]
    if not fitting:
        return None
    def rank(item):
        choice, seconds = item
        return (tuple(choice[axis] != lever for axis, lever in _PREFERENCE), seconds)
    return min(fitting, key=rank)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=int, default=1870, help="C (default: every emoji of every group)")
    parser.add_argument("--images", type=int, default=3072, help="training images of each measurement")
    parser.add_argument("--validation-images", type=int, default=4096,
                        help="scored after every epoch (enough that a call's fixed cost does not decide the per-image cost)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each measurement; the first is not timed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--dim", type=int, default=64, help="k of the measured k-wide head")
    parser.add_argument("--head-batch-size", type=int, default=1024, help="two-stage: the batch of the heads on features")
    parser.add_argument("--levers", default=",".join(LEVERS), help="levers to measure (baseline always)")
    parser.add_argument("--repeats", type=int, default=1, help="measurement rounds (baseline, levers, baseline)")
    parser.add_argument("--grid-images", type=int, default=100_000, help="images of the study's data set")
    parser.add_argument("--grid-validation-fraction", type=float, default=0.2)
    parser.add_argument("--grid-epochs", type=int, default=10, help="epochs of every run: the cap (a stopping rule ends runs sooner)")
    parser.add_argument("--grid-dims", default="16,64,256")
    parser.add_argument("--grid-seeds", type=int, default=5)
    parser.add_argument("--grid-holdout-fraction", type=float, default=0.15, help="the hold-out the stopping rule watches")
    parser.add_argument("--trunk-images", type=int, default=None, help="two-stage: the trunk's images (default: --grid-images)")
    parser.add_argument("--trunk-epochs", type=int, default=15)
    parser.add_argument("--budget-hours", type=float, default=BUDGET_HOURS)
    parser.add_argument("--out", type=Path, default=None, help="also write every figure as JSON")
    parser.add_argument("--measurements", type=Path, default=None, metavar="JSON",
                        help="project again from the measurements in an earlier --out (nothing is measured)")
    parser.add_argument("--actual", type=Path, default=None, metavar="EXPERIMENT_DIR",
                        help="also print the wall-clock time the grid took there (workbench experiment's output), "
                             "beside the chosen protocol's projection")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print("RESULT " + json.dumps(measure(json.loads(args.child))), flush=True)
        return 0
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is not timed)")
    levers = [name for name in args.levers.split(",") if name and name != "baseline"]
    unknown = [name for name in levers if name not in LEVERS]
    if unknown:
        parser.error(f"unknown lever {unknown[0]!r}; choose from {', '.join(LEVERS)}")
    spec = {"labels": args.labels, "images": args.images - args.images % args.batch_size or args.batch_size,
            "validation_images": args.validation_images, "epochs": args.epochs, "batch_size": args.batch_size, "dim": args.dim,
            "head_batch_size": args.head_batch_size}
    if args.measurements is not None:  # project again from an earlier run's measurements
        saved = json.loads(args.measurements.read_text())["measurements"]
        return _report(args, saved["results"], saved["baseline"], saved["levers"], saved["spec"], saved["load"],
                       measure_chosen=False)
    print(f"bench_study: C = {args.labels}, {spec['images']} training + {args.validation_images} validation images per "
          f"measurement, {args.epochs} epochs (first not timed), batch {args.batch_size}, k = {args.dim}; each lever in its "
          f"own process", flush=True)
    load_before = _load()
    print(f"load average before (1, 5, 15 min): {load_before} on {os.cpu_count()} cores", flush=True)
    rounds = []
    for repeat in range(args.repeats):
        measured = {"baseline": [_child("baseline", {}, spec)]}
        for name in levers:
            measured[name] = [_child(name, LEVERS[name], spec)]
            print(f"  measured {name} ({measured[name][0]['wall_seconds']:.0f} s)", flush=True)
        measured["baseline"].append(_child("baseline", {}, spec))
        rounds.append(measured)
    load_after = _load()
    print(f"load average after: {load_after}", flush=True)

    # the baseline of each round: the mean of its two measurements; each lever's ratios against its own round
    results, baselines = {}, []
    for measured in rounds:
        pair = measured["baseline"]
        baselines.append({"heads": {kind: {key: statistics.mean(m["heads"][kind][key] for m in pair)
                                           for key in pair[0]["heads"][kind]} for kind in pair[0]["heads"]}})
    baseline = {"heads": {kind: {key: statistics.median(b["heads"][kind][key] for b in baselines)
                                 for key in baselines[0]["heads"][kind]} for kind in baselines[0]["heads"]}}
    for name in levers:
        ratios = []
        for measured, round_baseline in zip(rounds, baselines):
            ratios.append(_ratios(measured[name][0], round_baseline))
        results[name] = rounds[-1][name][0] if "two-stage" == name else {"heads": {
            kind: {"train_ips": baseline["heads"][kind]["train_ips"] * statistics.median(r[kind]["train"] for r in ratios),
                   "eval_spi": baseline["heads"][kind]["eval_spi"] * statistics.median(r[kind]["eval"] for r in ratios),
                   "holdout_spi": baseline["heads"][kind]["holdout_spi"] * statistics.median(r[kind]["holdout"] for r in ratios),
                   "first_epoch_ips": rounds[-1][name][0]["heads"][kind]["first_epoch_ips"]}
            for kind in ("k", "C", "bottleneck")}}
    return _report(args, results, baseline, levers, spec, [load_before, load_after], measure_chosen=True)


def _report(args, results: dict, baseline: dict, levers: list, spec: dict, load: list, *, measure_chosen: bool) -> int:
    """Print the levers' rates and ratios, every combination's projection and the chosen protocol."""
    if not measure_chosen:
        print(f"bench_study: projected again from {args.measurements} (measured with C = {spec['labels']}, "
              f"{spec['images']} training images per measurement; load average before and after: {load[0]} / {load[1]})")
    dims = tuple(int(d) for d in args.grid_dims.split(","))
    runs = grid_runs(dims=dims, seeds=args.grid_seeds)
    grid = dict(images=args.grid_images, validation_fraction=args.grid_validation_fraction, epochs=args.grid_epochs, runs=runs,
                holdout_fraction=args.grid_holdout_fraction)
    trunk_images = args.trunk_images or args.grid_images
    print(f"\nThe grid: C ≥ 1,500, {args.grid_images} images ({args.grid_validation_fraction:g} validation), k ∈ {{{', '.join(map(str, dims))}}}, "
          f"{len(GRID_HEADS)} heads, {args.grid_seeds} seeds, {args.grid_epochs} epochs per run: "
          f"{sum(runs['runs'].values())} runs + {sum(runs['tuning'].values())} tuning runs, each on the training split less a "
          f"hold-out of {args.grid_holdout_fraction:g}; "
          f"two-stage: the trunk {args.trunk_epochs} epochs on {trunk_images} images")

    def projection(choice):
        rates, trunk = combination_rates(choice, results, baseline)
        if trunk is not None:
            trunk = {**trunk, "images": trunk_images, "epochs": args.trunk_epochs}
        return project_grid(rates, trunk=trunk, **grid)

    header = f"\n{'lever':<16}{'images/s k-head':>17}{'ratio':>7}{'images/s C-head':>17}{'ratio':>7}{'eval ms/1k (C)':>16}{'hold-out ms/1k':>16}{'grid h alone':>14}"
    print(header)
    rows = [("baseline", baseline)] + [(name, results[name]) for name in levers]
    figures = {"levers": {}}
    for name, result in rows:
        axis = next((a for a, values in AXES.items() if name in values and name != "baseline"), None)
        choice = {a: "baseline" for a in AXES}
        if axis is not None:
            choice[axis] = name
        hours = projection(choice)["total"] / 3600 if (axis is not None or name == "baseline") else None
        if name == "two-stage":
            heads = result["heads"]
            print(f"{'two-stage heads':<16}{heads['k']['train_ips']:>17.0f}{heads['k']['train_ips'] / baseline['heads']['k']['train_ips']:>7.1f}"
                  f"{heads['C']['train_ips']:>17.0f}{heads['C']['train_ips'] / baseline['heads']['C']['train_ips']:>7.1f}"
                  f"{1e6 * heads['C']['eval_spi']:>16.1f}{_holdout_ms(heads['C']):>16}{hours:>14.2f}")
            print(f"{'  features':<16}{result['features_ips']:>17.0f}  (images/s of feature extraction; bottleneck head on "
                  f"features {heads['bottleneck']['train_ips']:.0f} images/s)")
        else:
            heads = result["heads"]
            print(f"{name:<16}{heads['k']['train_ips']:>17.0f}{heads['k']['train_ips'] / baseline['heads']['k']['train_ips']:>7.2f}"
                  f"{heads['C']['train_ips']:>17.0f}{heads['C']['train_ips'] / baseline['heads']['C']['train_ips']:>7.2f}"
                  f"{1e6 * heads['C']['eval_spi']:>16.1f}{_holdout_ms(heads['C']):>16}"
                  f"{'—' if hours is None else f'{hours:.2f}':>14}")
        figures["levers"][name] = {**result, "grid_hours_alone": hours}

    if "files-cached" in results and "files-uncached" in results:
        cached, uncached = (results[name]["heads"]["k"]["train_ips"] for name in ("files-cached", "files-uncached"))
        print(f"\nDecoded-image caching (PNG files, k-head): cached {cached:.0f} images/s, decoded every epoch {uncached:.0f} "
              f"images/s ({cached / uncached:.2f}x); in memory {baseline['heads']['k']['train_ips']:.0f}. Not combined below: "
              "a grid generates its scenes in memory.")
    projections = []
    for combination in itertools.product(*AXES.values()):
        choice = dict(zip(AXES, combination))
        if any(lever != "baseline" and lever not in results for lever in combination):
            continue
        projections.append((choice, projection(choice)["total"]))
    projections.sort(key=lambda item: item[1])
    print(f"\nProjected grid time of every combination (from single-lever ratios; budget {args.budget_hours:g} h):")
    for choice, seconds in projections:
        print(f"  {seconds / 3600:7.2f} h  {_describe(choice)}{'' if seconds <= args.budget_hours * 3600 else '  (over budget)'}")
    chosen = choose(projections, args.budget_hours * 3600)
    figures["measurements"] = {"results": results, "baseline": baseline, "levers": levers, "spec": spec, "load": load}
    figures.update({"load_before_after": load, "grid": {**grid, "dims": dims, "seeds": args.grid_seeds, "trunk_images": trunk_images,
                    "trunk_epochs": args.trunk_epochs}, "projections": [{"choice": c, "hours": s / 3600} for c, s in projections]})
    if chosen is None:
        print(f"\nNo combination projects within {args.budget_hours:g} h: shrink the grid (--grid-images, --grid-epochs) or "
              "split it across sessions.")
    else:
        choice, seconds = chosen
        print(f"\nChosen protocol: {_describe(choice)}; projected {seconds / 3600:.2f} h (≤ {args.budget_hours:g} h), "
              "preferring end-to-end, then larger images, then the wider trunk.")
        parts = projection(choice)
        print(f"  of which runs {parts['runs'] / 3600:.2f} h, tuning {parts['tuning'] / 3600:.2f} h, the trunk and its features "
              f"{parts['trunk'] / 3600:.2f} h")
        if choice["protocol"] == "two-stage":
            print("It is the two-stage protocol: every head reads the features of one trunk, trained once with the sigmoid "
                  "head on other images, so it tells which head reads those features best, not whether a head's targets "
                  "would train a better trunk (the representation the heads share is fixed).")
        settings = {key: value for lever in choice.values() if lever != "baseline" for key, value in LEVERS[lever].items()}
        if measure_chosen and len([lever for lever in choice.values() if lever != "baseline"]) > 1:
            together = _child("chosen", settings, spec)
            if "features_ips" in together:
                factor = {a: lever for a, lever in choice.items() if a != "protocol"}
                rates, trunk = combination_rates({**factor, "protocol": "baseline"}, results, baseline)
                trunk = {"train_ips": rates["C"]["train_ips"], "eval_spi": rates["C"]["eval_spi"],
                         "features_ips": together["features_ips"], "images": trunk_images, "epochs": args.trunk_epochs}
                direct = project_grid(together["heads"], trunk=trunk, **grid)
            else:
                direct = project_grid(together["heads"], **grid)
            print(f"The chosen combination measured as one (same run): projected {direct['total'] / 3600:.2f} h "
                  f"(runs {direct['runs'] / 3600:.2f} h, tuning {direct['tuning'] / 3600:.2f} h, trunk and features "
                  f"{direct['trunk'] / 3600:.2f} h)")
            figures["chosen_measured"] = {**together, "projection": direct}
        figures["chosen"] = {"choice": choice, "hours": seconds / 3600}
    if args.actual is not None:
        figures["actual"] = _report_actual(args, chosen, results, baseline, grid, trunk_images)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
