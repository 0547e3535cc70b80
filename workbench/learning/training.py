"""Training one head, and resuming it after an interruption.

:func:`train` writes a run folder (its layout: :mod:`workbench.learning.runs`). After
every epoch it evaluates the validation split
(:class:`~workbench.learning.callbacks.EvaluationCallback`) and checkpoints: the
model with its optimizer state, then ``checkpoints/state.json`` (the last complete
epoch and the history up to it) as the commit point. Running :func:`train` again on
the same folder with the same settings resumes after the last checkpoint (the batch
order of each epoch depends only on the seed and the epoch), so a killed run loses at
most the epoch in progress. The resumed run continues exactly where the killed one was:
same batch order, same augmentation and dropout draws (the seed generators' states are
kept in ``state.json``, as ``model.save`` does not keep them), same optimizer state.

With a stopping rule or a schedule (``TrainConfig.patience``, ``lr_patience``) a hold-out of
the training split is scored after every epoch
(:class:`~workbench.learning.stopping.PlateauCallback`); the rule's state (best hold-out
value, counters, current rate) is part of every checkpoint's ``state.json`` and of the
finished run's ``config.json`` (``stopping``), so a resumed run decides exactly as the
uninterrupted one, and a run that stopped stays stopped.

Why not Keras' ``BackupAndRestore``: it saves weights and its epoch counter in two
non-atomic writes (a kill between them restores the wrong epoch), keeps none of the
per-epoch evaluation history, and deletes its backup when ``fit`` ends, while a run
folder keeps its last checkpoint; the data order of the resumed epoch must also be
known before ``fit`` starts. The checkpointer below does those four things with
Keras' own ``model.save``/``load_model`` (safe mode).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np

from workbench._io import atomic_save_npz, atomic_write_json, read_json
from workbench.learning.config import (
    BOTTLENECK_HEADS,
    EMBEDDING_HEADS,
    PMI_HEADS,
    SIGMOID_HEADS,
    TrainConfig,
    label_frequency_bias,
)
from workbench.learning.devices import describe_device
from workbench.learning.callbacks import EvaluationCallback
from workbench.learning.feeding import ImageSource, LabelBatches, drop_unreadable
from workbench.learning.models import build_model, compile_model, output_width
from workbench.learning.stopping import PlateauCallback, PlateauRule, holdout_split
from workbench.learning.runs import (
    RUN_FORMAT,
    RUN_FORMAT_VERSION,
    TrainedRun,
    check_out_dir,
    temporary_run_dir,
    read_state,
    run_fingerprint,
    save_model,
    write_manifest,
)
from workbench.evaluation.statistics import IMAGE_AP_FILE, read_image_ap
from workbench.method.targets import counted_on, head_dim, label_vectors
from workbench.method.embedding import LabelEmbedding

__all__ = ["train"]

#: Settings that may change between a run and its resumption.
_RESUMABLE_CHANGES = {"epochs", "workers", "verbose"}
#: Validation images kept in memory up to this many bytes; larger splits are streamed.
_VALIDATION_IN_MEMORY_BYTES = 512 * 1024 * 1024


def _seed_states(model) -> dict:
    """The state of every random layer's seed generator (augmentation, dropout), keyed by layer name and position.

    ``model.save`` does not keep them, so a resumed run would draw the augmentation and
    dropout of its first epochs again; ``state.json`` keeps them instead.
    """
    states = {}
    for layer in model.layers:
        for position, generator in enumerate(getattr(layer, "_seed_generators", None) or ()):
            states[f"{layer.name}/{position}"] = [int(value) for value in keras.ops.convert_to_numpy(generator.state)]
    return states


def _restore_seed_states(model, states: dict) -> None:
    for layer in model.layers:
        for position, generator in enumerate(getattr(layer, "_seed_generators", None) or ()):
            saved = states.get(f"{layer.name}/{position}")
            if saved is not None:
                generator.state.assign(np.asarray(saved, dtype=keras.backend.standardize_dtype(generator.state.dtype)))


class _Checkpointer(keras.callbacks.Callback):
    """After each epoch: the model (with optimizer state), then history, seed states and state (the commit point)."""

    def __init__(self, run_dir: Path, evaluation, rule: PlateauRule | None = None):
        super().__init__()
        self.run_dir = run_dir
        self.evaluation = evaluation
        self.rule = rule

    def on_epoch_end(self, epoch, logs=None):
        folder = self.run_dir / "checkpoints"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"epoch-{epoch + 1:04d}.keras"
        save_model(self.model, folder / name)
        history = self.evaluation.history
        atomic_save_npz(self.run_dir / IMAGE_AP_FILE, image_ap=self.evaluation.image_ap)
        atomic_write_json(self.run_dir / "history.json", history)
        state = {"epoch": epoch + 1, "checkpoint": name, "history": history, "seed_states": _seed_states(self.model)}
        if self.rule is not None:
            state["stopping"] = self.rule.to_dict()
        atomic_write_json(folder / "state.json", state)
        for old in folder.glob("epoch-*.keras"):
            if old.name != name:
                old.unlink(missing_ok=True)


def _validation_inputs(source: ImageSource, *, batch_size: int, workers: int):
    """Validation images in memory when they fit the budget, else a streaming batch sequence."""
    size = source.image_size
    if source.in_memory or len(source) * size * size * 3 <= _VALIDATION_IN_MEMORY_BYTES:
        return source.load_all()
    return LabelBatches(source, batch_size=batch_size, shuffle=False, targets=False, workers=workers)


class _FailureLog(keras.callbacks.Callback):
    """After each epoch, one line for every image file that could not be decoded (it was skipped)."""

    def __init__(self, sources, print_function):
        super().__init__()
        self.sources = sources
        self.print_function = print_function
        self.reported: set = set()

    def on_epoch_end(self, epoch, logs=None):
        for source in self.sources:
            for path, reason in list(source.failures.items()):
                if path not in self.reported:
                    self.reported.add(path)
                    self.print_function(f"skipped an image that could not be decoded: {reason}")


def train(
    dataset,
    *,
    config: TrainConfig,
    out_dir: str | Path | None = None,
    embedding=None,
    allow_overlap: bool = False,
    validation=None,
    callbacks: Sequence = (),
    verbose: int = 1,
    print_function: Callable[[str], None] = print,
    skip_bad_images: bool = False,
    check_images: bool = True,
    monitor_validation: bool = False,
    trunk=None,
) -> TrainedRun:
    """Train (or resume training) one head and write its run directory.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Images (in memory or as files) with their labels. When ``validation`` is
        ``None`` it is split with ``config.validation_fraction`` and
        ``config.split_random_state``; otherwise it is the training set as it is.
    config : TrainConfig
    out_dir : path, optional
        The run directory. If it holds an unfinished run with the same settings,
        training resumes after its last checkpoint (``config.epochs`` may grow);
        different settings raise ``ValueError``. ``None``: a new temporary folder
        (``workbench-run-*`` in the system's temporary directory), kept until the
        process ends; :meth:`TrainedRun.save` copies it somewhere lasting.
    embedding : LabelEmbedding, optional
        Required for the pmi, shuffled and random-matched heads (same labels as
        ``dataset``); gives ``k`` to the random, learned and sigmoid-lowrank heads when
        ``config.embedding_dim`` is ``None``. For the heads made from its vectors it must
        have been counted on the training split only
        (:func:`workbench.method.targets.counted_on`).
    allow_overlap : bool, default=False
        Train a PMI head (pmi, shuffled, random-matched) even when the embedding was counted
        on images that include the validation split; the overlap is recorded in
        ``config.json`` (``data.embedding_counted_on``).
    validation : MultiLabelDataset, optional
        The validation split (same vocabulary).
    callbacks : sequence of keras.callbacks.Callback
        Extra callbacks, called after the evaluation and the checkpoint of each epoch.
    verbose : int, default=1
        0 silent; 1 one line per epoch; 2 also Keras' progress bar.
    print_function : callable, default=print
    skip_bad_images : bool, default=False
        Image files are checked from their headers before anything is written: an
        unreadable one is a ``ValueError`` naming it, unless this is true, when such
        files are left out (and listed in ``config.json``'s ``data.skipped_images``). A
        file that passes the check but fails to decode during training is skipped and
        logged, never fatal (``data.failed_images``).
    check_images : bool, default=True
        False when the caller has already checked both splits' files (as
        :func:`workbench.experiments.compare.compare` does once for all its runs).
    monitor_validation : bool, default=False
        With ``config.patience`` or ``config.lr_patience``: the stopping rule and the schedule
        watch the validation metric itself instead of a hold-out taken from the training data.
        Only for runs whose validation images are a hold-out of a training split (learning-rate
        tuning, :func:`workbench.experiments.experiment.tune_learning_rates`), never for a run
        whose validation value is reported. Those images are scored by MAP@``config.map_k`` alone
        (the value watched; no macro AP, P@k, R@k or clean-label MAP).
    trunk : workbench.learning.twostage.Trunk, optional
        The two-stage protocol: train the head alone on this trunk's cached features of
        ``dataset``'s images (``config.model`` must be the trunk's); ``model.keras`` is then
        the trunk and the head composed, and ``config.json`` records the trunk
        (``protocol``: ``"two-stage"``, ``trunk``).

    Returns
    -------
    TrainedRun
    """
    run_dir = temporary_run_dir() if out_dir is None else Path(out_dir)
    check_out_dir(run_dir)
    if validation is None:
        train_set, validation_set = dataset.split(
            validation_fraction=config.validation_fraction, random_state=config.split_random_state
        )
    else:
        train_set, validation_set = dataset, validation
        if tuple(validation_set.vocabulary.names) != tuple(train_set.vocabulary.names):
            raise ValueError("The validation set has a different vocabulary from the training set; split one data set.")
    skipped_images = {}
    if trunk is not None:
        check_images = False  # the head reads cached features, never an image file
        if trunk.settings["model"] != config.model.to_dict():
            raise ValueError("The run's model settings differ from its trunk's; give the trunk's ModelConfig.")
    if check_images:
        (train_set, validation_set), skipped_images = drop_unreadable(train_set, validation_set, skip=skip_bad_images)
    if skipped_images and verbose:
        print_function(f"Leaving out {len(skipped_images)} image file(s) that cannot be read "
                       f"(listed in {run_dir / 'config.json'}).")
    vocabulary = train_set.vocabulary
    provenance = None
    if config.head in PMI_HEADS and embedding is not None:
        provenance = counted_on(embedding, train_set, validation_set, allow_overlap=allow_overlap)
    head_embedding = label_vectors(
        config.head,
        vocabulary=vocabulary,
        embedding=embedding,
        embedding_dim=config.embedding_dim,
        random_state=config.random_state,
        label_counts=np.diff(train_set.labels.tocsc().indptr),
    )
    fingerprint = run_fingerprint(train_set, validation_set)
    holdout_set = None
    if config.uses_holdout and not monitor_validation:  # trained on the rest of the training split
        train_set, holdout_set = holdout_split(train_set, fraction=config.holdout_fraction,
                                               split_random_state=config.split_random_state)
    vectors = None if head_embedding is None else head_embedding.vectors
    embedding_dim = int(vectors.shape[1]) if vectors is not None else \
        head_dim(config.head, embedding=embedding, embedding_dim=config.embedding_dim)  # a bottleneck's k, or None
    width = output_width(config.head, embedding_dim=embedding_dim, num_labels=len(vocabulary))
    meta = {
        "format": RUN_FORMAT,
        "format_version": RUN_FORMAT_VERSION,
        "head": config.head,
        "train": config.to_dict(),
        "learning_rate": config.resolved_learning_rate,
        "output_dim": int(width),  # the last layer's width: k, or C for the sigmoid and bottleneck heads
        "embedding_dim": embedding_dim,  # k: the label vectors' (C for identity) or the bottleneck's; None for sigmoid
        "num_labels": len(vocabulary),
        "data": {
            "name": dataset.name,
            "num_train": len(train_set),
            "num_validation": len(validation_set),
            "num_holdout": 0 if holdout_set is None else len(holdout_set),  # scored for the stopping rule, not trained on
            "holdout": "validation" if config.uses_holdout and monitor_validation else
            None if holdout_set is None else "training split",
            "fingerprint": fingerprint,
            "skipped_images": skipped_images,
            "embedding_counted_on": provenance,
        },
        "embedding_settings": None if head_embedding is None else head_embedding.settings,
        "protocol": "end-to-end" if trunk is None else "two-stage",
        "trunk": None if trunk is None else trunk.describe(),
        "backend": keras.backend.backend(),
        "device": describe_device(),
    }

    # -- resume? ---------------------------------------------------------------------
    state = read_state(run_dir) if run_dir.is_dir() else None
    if (run_dir / "config.json").is_file():
        previous = read_json(run_dir / "config.json")
        _check_resumable(previous, meta, run_dir)
        if previous.get("data", {}).get("failed_images"):  # files that failed before the interruption
            meta["data"]["failed_images"] = dict(previous["data"]["failed_images"])
    if state is not None and config.head in EMBEDDING_HEADS and (run_dir / "embedding").is_dir():
        saved = LabelEmbedding.load(run_dir / "embedding")
        if saved.vectors.shape != head_embedding.vectors.shape or not np.allclose(saved.vectors, head_embedding.vectors, atol=1e-6):
            raise ValueError(f"{run_dir} was trained against a different label embedding; give a new --out folder.")
    run_dir.mkdir(parents=True, exist_ok=True)
    history: list = []
    initial_epoch = 0
    image_ap = None
    rule = PlateauRule.of(config) if config.uses_holdout else None
    if state is not None and rule is not None and state.get("stopping"):
        rule = PlateauRule.from_dict(state["stopping"])
    if state is not None:
        model = keras.saving.load_model(run_dir / "checkpoints" / state["checkpoint"], safe_mode=True)
        _restore_seed_states(model, state.get("seed_states") or {})
        history = list(state["history"])
        initial_epoch = int(state["epoch"])
        image_ap = read_image_ap(run_dir, num_epochs=initial_epoch)
        if verbose and not (rule is not None and rule.stopped_epoch is not None):
            print_function(f"Resuming {run_dir} after epoch {initial_epoch} of {config.epochs}.")
    else:
        output_bias = None
        if config.head in SIGMOID_HEADS and config.sigmoid_bias == "label_frequency":
            output_bias = label_frequency_bias(np.diff(train_set.labels.tocsc().indptr), len(train_set))
        model = build_model(config.model, head=config.head, embedding_dim=embedding_dim, num_labels=len(vocabulary),
                            random_state=config.random_state, output_bias=output_bias,
                            num_features=None if trunk is None else trunk.num_features)
        compile_model(model, head=config.head, optimizer=config.optimizer, learning_rate=config.resolved_learning_rate)
    # config.json first: it marks the folder as this run's, so a run stopped by a full disk or a kill at
    # any later write is resumed by the same command, not refused as a folder holding someone's files
    if rule is not None:
        meta["stopping"] = rule.to_dict()
    atomic_write_json(run_dir / "config.json", {**meta, "status": "running", "epochs_completed": initial_epoch})
    vocabulary.write_csv(run_dir / "vocabulary.csv")
    if head_embedding is not None:
        head_embedding.save(run_dir / "embedding")
    (run_dir / "manifest.json").unlink(missing_ok=True)  # rewritten when the model is saved

    # -- fit -------------------------------------------------------------------------
    stopped = rule is not None and rule.stopped_epoch is not None
    if initial_epoch < config.epochs and not stopped:
        source = _source(train_set, config, trunk)
        batches = LabelBatches(
            source,
            train_set.labels,
            vectors=vectors,
            batch_size=config.batch_size,
            shuffle=True,
            random_state=config.random_state,
            start_epoch=initial_epoch,
            workers=config.workers,
        )
        # no decode cache: validation is loaded whole once when it fits its budget, and a split too
        # large for that budget is streamed rather than held in memory a second way
        validation_source = _source(validation_set, config, trunk, cache_bytes=0)
        # a tuning run's validation images are a hold-out it is scored on by MAP@k alone
        evaluation = EvaluationCallback(
            inputs=_validation_inputs(validation_source, batch_size=config.batch_size, workers=config.workers),
            labels=validation_set.labels,
            clean_labels=None if monitor_validation else validation_set.clean_labels,
            measure="map" if monitor_validation else "all",
            vectors=vectors,
            batch_size=max(config.batch_size, 128),
            map_k=config.map_k,
            precision_k=config.precision_k,
            history=history,
            image_ap=image_ap,
            verbose=verbose,
            print_function=print_function,
        )
        plateau, sources = [], [source, validation_source]
        if rule is not None:
            plateau = [PlateauCallback(rule=rule, score=_holdout_score(evaluation, holdout_set, config, vectors, sources,
                                                                       trunk),
                                       history=evaluation.history, map_k=config.map_k, verbose=verbose,
                                       print_function=print_function)]
        if verbose and initial_epoch == 0:
            bottleneck = f" through a {embedding_dim}-wide bottleneck" if config.head in BOTTLENECK_HEADS else ""
            held = "" if holdout_set is None else f", {len(holdout_set)} held out for the stopping rule"
            bottleneck += "" if trunk is None else f", on the {trunk.num_features} cached features of a trunk trained once"
            print_function(
                f"Training the {config.head} head on {len(train_set)} images ({len(validation_set)} for validation{held}, "
                f"{len(vocabulary)} labels, output width {width}{bottleneck}) for "
                f"{'at most ' if config.patience else ''}{config.epochs} epochs; {meta['device']}."
            )
        model.fit(
            batches,
            epochs=config.epochs,
            initial_epoch=initial_epoch,
            callbacks=[evaluation, *plateau, _FailureLog(sources, print_function if verbose else lambda line: None),
                       _Checkpointer(run_dir, evaluation, rule), *callbacks],
            shuffle=False,
            verbose=1 if verbose >= 2 else 0,
        )
        history = evaluation.history
        failed = {key: value for one in sources for key, value in one.failures.items()}
        if failed:
            meta["data"]["failed_images"] = {**meta["data"].get("failed_images", {}), **failed}
    elif verbose:
        why = f"stopped after epoch {rule.stopped_epoch} (hold-out flat for {rule.patience} epochs)" if stopped else \
            f"already has {initial_epoch} epoch(s)"
        print_function(f"{run_dir} {why}; nothing to train.")

    if trunk is not None:  # the head alone was trained and checkpointed; the run's model takes images
        model = trunk.compose(model)
    save_model(model, run_dir / "model.keras")
    write_manifest(run_dir)
    atomic_write_json(run_dir / "history.json", history)
    if rule is not None:
        meta["stopping"] = rule.to_dict()
    atomic_write_json(run_dir / "config.json", {**meta, "status": "complete", "epochs_completed": max(initial_epoch, len(history))})
    return TrainedRun(
        model=model,
        head=config.head,
        vocabulary=vocabulary,
        embedding=head_embedding,
        image_size=config.model.image_size,
        config=config,
        history=list(history),
        run_dir=run_dir,
    )


def _source(dataset, config: TrainConfig, trunk, cache_bytes: int | None = None):
    """The images of ``dataset`` as the run reads them: decoded images, or the trunk's cached features."""
    if trunk is not None:
        return trunk.source(dataset)
    return ImageSource(dataset, image_size=config.model.image_size, cache_bytes=cache_bytes)


def _holdout_score(evaluation: EvaluationCallback, holdout_set, config: TrainConfig, vectors, sources: list, trunk=None):
    """``score()``: the hold-out MAP@k of the current model, through the validation's own scoring path.

    Without a hold-out set (``monitor_validation``) it is the validation record just written.
    """
    key = f"map_at_{config.map_k}"
    if holdout_set is None:
        return lambda: evaluation.history[-1].get(key) if evaluation.history else None
    holdout_source = _source(holdout_set, config, trunk, cache_bytes=0)
    sources.append(holdout_source)
    measure = EvaluationCallback(
        inputs=_validation_inputs(holdout_source, batch_size=config.batch_size, workers=config.workers),
        labels=holdout_set.labels, vectors=vectors, batch_size=max(config.batch_size, 128), map_k=config.map_k,
        precision_k=config.precision_k, verbose=0, measure="map")  # the rule reads MAP@k alone

    def score():
        measure.set_model(evaluation.model)
        value = measure.evaluate_model()[key]
        return None if value is None or not np.isfinite(value) else float(value)

    return score


def _check_resumable(previous: dict, current: dict, run_dir: Path) -> None:
    if not isinstance(previous, dict) or previous.get("format") != RUN_FORMAT:
        raise ValueError(f"{run_dir / 'config.json'} is not a workbench run; give --out a new or empty folder.")
    defaults = TrainConfig().to_dict()  # a setting added since the run was written has its default there
    recorded = previous.get("train", {}) if isinstance(previous.get("train"), dict) else {}
    before = {k: recorded.get(k, defaults.get(k)) for k in set(recorded) | set(current["train"]) if k not in _RESUMABLE_CHANGES}
    after = {k: v for k, v in current["train"].items() if k not in _RESUMABLE_CHANGES}
    changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
    if previous.get("data", {}).get("fingerprint") != current["data"]["fingerprint"]:
        changed.append("data")
    if previous.get("protocol", "end-to-end") != current["protocol"]:
        changed.append("protocol")
    if changed:
        raise ValueError(
            f"{run_dir} holds a run with different settings ({', '.join(changed)}); "
            "give --out a new folder, or delete it to start over."
        )
