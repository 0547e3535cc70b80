"""Comparing heads: every head and seed trained on one split against one label embedding.

:func:`compare` is the experiment the workbench exists for: does a head trained against
the PMI label embedding beat the usual sigmoid head, and random label vectors with the
same cosine loss? It **takes** the embedding (a
:class:`~workbench.method.embedding.LabelEmbedding`, or the
:class:`~workbench.method.embed.EmbeddingOptions` to compute it from the training split,
once) and never computes it again.

Fair comparison: one train/validation split serves every head and seed; a computed
embedding sees the training split only; every head gets the same trunk, epochs and
batch size; learning rates default to
:data:`~workbench.learning.config.DEFAULT_LEARNING_RATES` (one sweep with the same budget
for every head). :func:`head_config` is the one recipe for a head's
:class:`~workbench.learning.config.TrainConfig`, used here and by the notebook workspace.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from workbench import _checks
from workbench._io import atomic_write_json, read_json
from workbench.learning.config import (DEFAULT_LEARNING_RATES, HEADS, K_HEADS, PMI_HEADS, SIGMOID_HEADS, STOPPING_FIELDS,
                                      ModelConfig, TrainConfig)
from workbench.evaluation.metrics import json_number
from workbench.method.embed import EmbeddingOptions
from workbench.method.embedding import LabelEmbedding
from workbench.method.targets import counted_on

__all__ = ["DEFAULT_HEADS", "compare", "head_config", "stopping_settings", "embedding_fingerprint"]

#: The heads :func:`compare` trains when none are named: the method, random vectors of the same k with the
#: same loss (does the PMI structure matter?), one-hot vectors with the same loss (does the cosine loss
#: matter?), and the usual sigmoid cross-entropy head.
DEFAULT_HEADS = ("pmi", "random", "identity", "sigmoid")
#: Heads that need an embedding: its vectors (pmi, shuffled, random-matched) or its k (random, learned, sigmoid-lowrank).
_EMBEDDING_USERS = K_HEADS
#: results.json ``config`` entries that must match for a comparison to resume (heads, seeds and epochs may grow).
_RESUME_KEYS = ("data_fingerprint", "embedding_options", "embedding_fingerprint", "embedding_dim", "batch_size", "model",
                "learning_rates", "validation_fraction", "split_random_state", "optimizer", "stopping", "protocol")
#: Resume keys added since comparisons were first written, with the value an earlier one (which lacks them) had.
_RESUME_KEYS_ADDED = {"protocol": "end-to-end"}


def embedding_fingerprint(embedding: LabelEmbedding) -> str:
    """A short hash (16 hex digits) of an embedding's labels and vectors."""
    digest = hashlib.sha256("\n".join(embedding.vocabulary.names).encode("utf-8"))
    digest.update(np.ascontiguousarray(embedding.vectors, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def head_config(
    head: str,
    *,
    seed: int,
    epochs: int,
    batch_size: int,
    model: ModelConfig,
    embedding_dim: int | None = None,
    learning_rate: float | None = None,
    validation_fraction: float,
    split_random_state: int,
    workers: int = 2,
    stopping: dict | None = None,
) -> TrainConfig:
    """The :class:`TrainConfig` a comparison gives ``head`` with ``seed``.

    The learning rate is explicit (``learning_rate`` or the head's default), so a run
    trained outside the comparison with this config is that very run. The sigmoid head
    starts from each label's log-odds (``sigmoid_bias="label_frequency"``): a baseline
    gets the same care as the method (sigmoid-lowrank too). ``embedding_dim`` is
    recorded for the heads that take ``k`` as a setting (random, learned,
    sigmoid-lowrank); pmi, shuffled and random-matched take it from their embedding.
    ``stopping`` gives the schedule and stopping fields (:data:`~workbench.learning.config.STOPPING_FIELDS`).
    """
    _checks.choice(head, "head", HEADS)
    return TrainConfig(
        head=head,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=DEFAULT_LEARNING_RATES[head] if learning_rate is None else learning_rate,
        embedding_dim=embedding_dim if head in K_HEADS and head not in PMI_HEADS else None,
        validation_fraction=validation_fraction,
        split_random_state=split_random_state,
        random_state=seed,
        workers=workers,
        model=replace(model),
        sigmoid_bias="label_frequency" if head in SIGMOID_HEADS else "zero",
        **_stopping_fields(stopping),
    )


def _stopping_fields(stopping: dict | None) -> dict:
    """``stopping`` checked: only :data:`STOPPING_FIELDS`, each a valid :class:`TrainConfig` value."""
    stopping = dict(stopping or {})
    unknown = sorted(set(stopping) - set(STOPPING_FIELDS))
    if unknown:
        raise ValueError(f"stopping has no setting {unknown[0]!r}; give some of {', '.join(STOPPING_FIELDS)}.")
    return stopping


def stopping_settings(stopping: dict | None) -> dict | None:
    """Every field of ``stopping`` with its default filled in (as recorded in ``results.json``), or ``None`` when off."""
    config = TrainConfig(**_stopping_fields(stopping))
    return {name: getattr(config, name) for name in STOPPING_FIELDS} if config.uses_holdout else None


def _check_heads_and_seeds(heads, seeds) -> tuple[list[str], list[int]]:
    heads = [str(head) for head in heads]
    if not heads:
        raise ValueError(f"No heads to compare; give at least one of {', '.join(HEADS)}.")
    for head in heads:
        _checks.choice(head, "head", HEADS)
    if len(set(heads)) != len(heads):
        raise ValueError(f"Heads {heads} repeat a head; list each head once.")
    seeds = [_checks.integer(seed, "seed", minimum=0) for seed in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"Seeds {seeds} must be a non-empty list of distinct integers.")
    return heads, seeds


def _previous_config(out_dir: Path) -> dict | None:
    if not (out_dir / "results.json").is_file():
        return None
    previous = read_json(out_dir / "results.json")
    if not (isinstance(previous, dict) and isinstance(previous.get("config"), dict) and isinstance(previous.get("runs"), list)):
        raise ValueError(f"{out_dir} holds a results.json that was not written by the workbench (no comparison's config "
                         "and runs); give --out a new or empty folder, so that nothing of yours is replaced.")
    return previous["config"]


def _refuse(out_dir: Path, changed) -> None:
    raise ValueError(
        f"{out_dir} holds a comparison with different settings ({', '.join(changed)}); "
        "give --out a new folder, or delete it to start over."
    )


def _check_resumable(out_dir: Path, config: dict) -> None:
    """Refuse, before anything is written, a folder holding a comparison with other settings."""
    before = _previous_config(out_dir)
    if before is None:
        if (out_dir / "embedding").exists() and "embedding_fingerprint" in config:
            saved = LabelEmbedding.load(out_dir / "embedding")
            if embedding_fingerprint(saved) != config["embedding_fingerprint"]:
                raise ValueError(f"{out_dir / 'embedding'} holds another label embedding; give --out a new folder.")
        return
    changed = [key for key in _RESUME_KEYS if before.get(key, _RESUME_KEYS_ADDED.get(key)) != config.get(key)]
    if changed:
        _refuse(out_dir, changed)


def compare(
    dataset,
    *,
    out_dir: str | Path,
    embedding: LabelEmbedding | EmbeddingOptions | None = None,
    heads: Sequence[str] = DEFAULT_HEADS,
    epochs: int = 10,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    batch_size: int = 64,
    model: ModelConfig | None = None,
    learning_rates: dict | None = None,
    validation_fraction: float = 0.1,
    split_random_state: int = 0,
    workers: int = 2,
    verbose: int = 1,
    print_function: Callable[[str], None] = print,
    skip_bad_images: bool = False,
    allow_overlap: bool = False,
    stopping: dict | None = None,
    trunk=None,
) -> dict:
    """Train every head with every seed on one split and write ``DIR/results.json``.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Split once with ``validation_fraction`` and ``split_random_state``.
    out_dir : path
        Runs go to ``DIR/runs/<head>-seed<seed>``, the embedding to ``DIR/embedding``.
        Running ``compare`` again on the same folder resumes (more epochs, seeds or
        heads are fine); other settings are refused before anything is written.
    embedding : LabelEmbedding or EmbeddingOptions, optional
        The label embedding of the pmi head and of its controls shuffled and
        random-matched (the random, learned and sigmoid-lowrank heads take its ``k``). Options
        (default: ``EmbeddingOptions()``) are computed from the training split's counts,
        once; an embedding is used as it is, and refused when it was counted on images
        that include the validation split (:func:`workbench.method.targets.counted_on`;
        ``results.json``'s ``embedding_from`` says where its counts come from).
    heads : sequence of str, default=("pmi", "random", "identity", "sigmoid")
        Any of :data:`~workbench.learning.config.HEADS`, the controls ``shuffled``,
        ``random-matched``, ``learned`` and ``sigmoid-lowrank`` included.
    epochs : int, default=10
    seeds : sequence of int, default=(0, 1, 2, 3, 4)
        The ``random_state`` of each run (initialisation, batch order, random vectors).
    batch_size : int, default=64
    model : ModelConfig, optional
    learning_rates : dict, optional
        Per-head overrides of :data:`DEFAULT_LEARNING_RATES`.
    validation_fraction : float, default=0.1
    split_random_state : int, default=0
    workers : int, default=2
        Threads preparing batches.
    skip_bad_images : bool, default=False
        Image files that cannot be read (checked from their headers, before anything is
        computed or written) are a ``ValueError``, or with this, left out of both splits.
    allow_overlap : bool, default=False
        Use an embedding counted on images that include the validation split anyway; the
        overlap is recorded (``embedding_from``).
    stopping : dict, optional
        The learning-rate schedule and the stopping rule of every run
        (:data:`~workbench.learning.config.STOPPING_FIELDS`: ``patience``, ``lr_patience``,
        ``lr_factor``, ``min_delta``, ``holdout_fraction``; ``epochs`` is then the cap). Each
        run holds out the same part of the training split and stops on it; the validation
        split only measures. Default: none, every run trains ``epochs``.
    trunk : workbench.learning.twostage.Trunk, optional
        The two-stage protocol (:func:`workbench.learning.twostage.prepare_trunk`, made from
        ``dataset`` with the same split): every head is trained on this trunk's cached
        features of the heads' part of the training split (the trunk's own images are left
        out, and counted for no embedding); ``config`` records ``protocol`` and ``trunk``.

    Returns
    -------
    dict
        ``{"config": {...}, "runs": [{"head", "seed", "history": [{"epoch",
        "map_at_100", "macro_ap", "seconds"}, …]}, …]}``, as written to
        ``DIR/results.json``; a record also has ``map_at_100_clean`` (MAP@100 against the
        clean labels) when the data set knows its clean labels. ``config`` records
        ``embedding_options`` (every PMI and spectral choice), ``embedding_from`` and
        ``stopping`` (the settings, or ``None``). With a stopping rule a run also has
        ``stopping`` (its :class:`~workbench.learning.stopping.PlateauRule` state:
        ``stopped_epoch``, ``best_epoch``, ``epochs_to_convergence`` …) and its records
        ``holdout_map_at_100`` and ``learning_rate``; a stopped run has fewer than ``epochs`` records.
    """
    from workbench.learning.devices import describe_device
    from workbench.learning.training import train

    heads, seeds = _check_heads_and_seeds(heads, seeds)
    stopping = stopping_settings(stopping)
    model = model or ModelConfig()
    rates = {head: DEFAULT_LEARNING_RATES[head] for head in heads}
    for head, rate in (learning_rates or {}).items():
        _checks.choice(head, "head of a learning rate", HEADS)
        rates[head] = _checks.number(rate, f"learning rate of {head}", positive=True)
    if embedding is None:
        embedding = EmbeddingOptions()
    if not isinstance(embedding, (LabelEmbedding, EmbeddingOptions)):
        raise ValueError(f"embedding must be a LabelEmbedding or EmbeddingOptions; got {type(embedding).__name__}.")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir} exists and is not a folder; give --out a folder path.")
    train_set, validation_set = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)
    from workbench.learning.feeding import drop_unreadable

    (train_set, validation_set), skipped_images = drop_unreadable(train_set, validation_set, skip=skip_bad_images)
    if trunk is not None:
        if trunk.settings["data_fingerprint"] != dataset.fingerprint() or skipped_images:
            raise ValueError("The trunk was made from another data set; prepare a trunk for this one.")
        train_set = trunk.heads_split(train_set)

    options = embedding if isinstance(embedding, EmbeddingOptions) else EmbeddingOptions.of(embedding)
    uses_pmi = any(head in PMI_HEADS for head in heads)
    embedding_from = "training split only"
    if isinstance(embedding, LabelEmbedding):
        embedding_from = counted_on(embedding, train_set, validation_set, allow_overlap=allow_overlap)
    elif uses_pmi:  # the one place a comparison computes its embedding
        before = _previous_config(out_dir)
        if before is not None and before.get("embedding_options") != embedding.to_dict():
            _refuse(out_dir, ["embedding_options"])  # before spending time on an embedding that would be refused
        from workbench.method.cooccurrence import count_cooccurrence
        from workbench.method.embed import embed_labels

        embedding = embed_labels(count_cooccurrence(train_set.labels, train_set.vocabulary), options=embedding)
    embedding_dim = None
    if any(head in _EMBEDDING_USERS for head in heads):
        embedding_dim = embedding.embedding_dim if isinstance(embedding, LabelEmbedding) else options.embedding_dim

    config = {
        "data": dataset.name,
        "data_fingerprint": dataset.fingerprint(),
        "num_images": len(dataset),
        "num_train": len(train_set),
        "num_validation": len(validation_set),
        "num_labels": len(dataset.vocabulary),
        "heads": heads,
        "seeds": seeds,
        "epochs": _checks.integer(epochs, "epochs"),
        "batch_size": _checks.integer(batch_size, "batch_size"),
        "embedding_dim": embedding_dim,
        "embedding_options": None if options is None else options.to_dict(),
        "embedding_from": embedding_from if uses_pmi else None,
        "learning_rates": rates,
        "optimizer": "rmsprop",
        "model": model.to_dict(),
        "validation_fraction": float(validation_fraction),
        "split_random_state": int(split_random_state),
        "skipped_images": skipped_images,
        "device": describe_device(),
        "stopping": stopping,
        "protocol": "end-to-end" if trunk is None else "two-stage",
        "trunk": None if trunk is None else trunk.describe(),
    }
    if uses_pmi:
        config["embedding_fingerprint"] = embedding_fingerprint(embedding)
    _check_resumable(out_dir, config)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "results.json").exists():  # first: the folder is a comparison from now on (a rerun resumes it)
        atomic_write_json(out_dir / "results.json", {"config": config, "runs": []})
    if uses_pmi and not (out_dir / "embedding").exists():
        embedding.save(out_dir / "embedding")

    runs = []
    for seed in seeds:
        for head in heads:
            if verbose:
                print_function(f"== {head} head, seed {seed} ==")
            run = train(
                train_set,
                validation=validation_set,
                config=head_config(
                    head, seed=seed, epochs=epochs, batch_size=batch_size, model=model, embedding_dim=embedding_dim,
                    learning_rate=rates[head], validation_fraction=validation_fraction,
                    split_random_state=split_random_state, workers=workers, stopping=stopping,
                ),
                out_dir=out_dir / "runs" / f"{head}-seed{seed}",
                embedding=embedding if head in PMI_HEADS else None,
                allow_overlap=allow_overlap,
                verbose=verbose,
                print_function=print_function,
                check_images=False,  # both splits were checked once, above
                trunk=trunk,
            )
            history = [
                {"epoch": record["epoch"], "map_at_100": _finite(record.get("map_at_100")),
                 **({"map_at_100_clean": _finite(record["map_at_100_clean"])} if "map_at_100_clean" in record else {}),
                 "macro_ap": _finite(record.get("macro_ap")), "seconds": record["seconds"],
                 **{key: _finite(record.get(key)) for key in ("holdout_map_at_100", "learning_rate") if key in record}}
                for record in run.history
            ]
            entry = {"head": head, "seed": seed, "history": history}
            if stopping is not None:
                entry["stopping"] = read_json(run.run_dir / "config.json").get("stopping")
            runs.append(entry)
            atomic_write_json(out_dir / "results.json", {"config": config, "runs": runs})
    return {"config": config, "runs": runs}


def _finite(value):
    """JSON has no NaN: undefined metrics become ``None``."""
    return None if value is None else json_number(value)
