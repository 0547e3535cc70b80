"""Load-or-build: every notebook reads its predecessors' artefacts from the results folder, or builds them.

Each notebook needs the artefacts of the notebooks before it (the data set, the
counts, the label embedding, a trained run). Each ``ensure_*`` function reads the
artefact from the results folder when it is there and was made with the same
settings, and otherwise builds it and writes it, so a notebook runs on its own in a
fresh clone and reuses its predecessors' work in the main job.

Layout of ``RESULTS`` (one folder per artefact, each with the settings that made it):

``data/``
    The emoji scenes (``workbench scenes`` layout); settings in ``scenes.json``.
``counts/``
    ``counts.json`` (:meth:`CooccurrenceCounts.save_json`) of the *training split*,
    and ``workspace.json``.
``embedding/``
    :meth:`LabelEmbedding.save` files and ``workspace.json``.
``run/``
    ``pmi-seed<seed>/``, the run directory of the pmi head
    (:func:`workbench.learning.training.train`), and ``workspace.json``.
``comparison/``
    :func:`workbench.experiments.compare.compare` output (``results.json``, ``runs/`` …) and
    ``workspace.json``.

Compatibility is equality of settings. ``workspace.json`` is written *before* an
artefact is built (with ``"complete": false``) and marked complete after, so an
interrupted build is resumed (training) or redone, never taken for finished. A folder
whose settings differ is deleted and rebuilt; a folder that holds something else
(no ``workspace.json``, not ours) is never deleted: that is a ``ValueError``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from workbench._io import atomic_write_json, read_json

__all__ = [
    "recorded_data_settings",
    "describe_differences",
    "scene_topics",
    "SETTINGS_FILE",
    "ensure_scenes",
    "ensure_counts",
    "ensure_embedding",
    "recorded_embedding_options",
    "ensure_run",
    "ensure_comparison",
    "pmi_train_config",
]

#: The settings file of every artefact folder the workspace writes (the data set keeps its own ``scenes.json``).
SETTINGS_FILE = "workspace.json"
_FORMAT = "workbench-workspace"
_VERSION = 1


# ---------------------------------------------------------------------------------
# settings files
# ---------------------------------------------------------------------------------
#: SceneConfig fields added after data sets were first recorded; an earlier record had their defaults.
_SCENE_SETTINGS_ADDED = ("label_skew", "topic_balance")


def _normalised(settings: dict) -> dict:
    """``settings`` as JSON would give it back (tuples become lists, numpy scalars plain)."""
    from workbench._io import _json_default

    return json.loads(json.dumps(settings, default=_json_default, sort_keys=True))


def _read_settings(folder: Path) -> dict | None:
    path = folder / SETTINGS_FILE
    if not path.is_file():
        return None
    try:
        data = read_json(path)
    except ValueError:
        return None
    return data if isinstance(data, dict) and data.get("format") == _FORMAT else None


def _status(folder: Path, artefact: str, settings: dict) -> str:
    """``"complete"``, ``"partial"`` (same settings, unfinished), ``"stale"`` (ours, other settings) or ``"absent"``."""
    if not folder.exists():
        return "absent"
    if not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; remove it or choose another results folder.")
    saved = _read_settings(folder)
    if saved is None:
        if any(folder.iterdir()):
            raise ValueError(
                f"{folder} holds files the workbench did not write (no {SETTINGS_FILE}); "
                "move them away or choose another results folder."
            )
        return "absent"
    if saved.get("artefact") != artefact or saved.get("settings") != _normalised(settings):
        return "stale"
    return "complete" if saved.get("complete") else "partial"


def _flat(settings, prefix: str = "") -> dict:
    if not isinstance(settings, dict):
        return {prefix: settings}
    out = {}
    for key, value in settings.items():
        out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def describe_differences(old: dict, new: dict, *, limit: int = 6) -> str:
    """``"num_images 1600 → 3000, options.embedding_dim 8 → 16"``: the settings that differ (nested keys dotted)."""
    old, new = _flat(_normalised(old or {})), _flat(_normalised(new or {}))
    changed = [f"{key} {old.get(key, '(none)')!r} → {new.get(key, '(none)')!r}"
               for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    more = f" and {len(changed) - limit} more" if len(changed) > limit else ""
    return ", ".join(changed[:limit]) + more if changed else "no setting"


def _begin(folder: Path, artefact: str, settings: dict, status: str, *, verbose: bool = True) -> None:
    """Clear a stale folder (saying which settings differ) and record the settings of the build about to start."""
    if status == "stale":
        saved = (_read_settings(folder) or {}).get("settings") or {}
        _say(verbose, f"{folder} was built with other settings ({describe_differences(saved, settings)}); building it anew.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_settings(folder, artefact, settings, complete=False)


def _write_settings(folder: Path, artefact: str, settings: dict, *, complete: bool, **extra) -> None:
    atomic_write_json(
        folder / SETTINGS_FILE,
        {"format": _FORMAT, "version": _VERSION, "artefact": artefact, "complete": bool(complete),
         "settings": _normalised(settings), **extra},
    )


def _say(verbose: bool, message: str) -> None:
    if verbose:
        print(message)


# ---------------------------------------------------------------------------------
# data set
# ---------------------------------------------------------------------------------
def _scene_name(config) -> str:
    return f"emoji scenes ({config.num_images} images, {config.num_labels} labels, seed {config.random_state})"


def ensure_scenes(results_dir, *, random_state: int = 0, verbose: bool = True, **scene_settings):
    """The emoji-scenes data set of ``RESULTS/data``, generated and written when absent or different.

    Parameters
    ----------
    results_dir : path
        The results folder (``RESULTS``).
    random_state : int
        Seed of the scenes.
    verbose : bool
        Print one line saying whether the data set was read or generated.
    **scene_settings
        Fields of :class:`workbench.data.scenes.SceneConfig` (``num_images``,
        ``num_labels``, ``image_size``, ``max_labels``, ``missing_rate`` …).

    Returns
    -------
    MultiLabelDataset
        Images in memory, shape ``(N, S, S, 3)`` uint8; ``image_paths`` relative to
        ``RESULTS/data``; identical whether read or generated.
    """
    from workbench.data.datasets import MultiLabelDataset, read_scenes
    from workbench.data.images import load_images
    from workbench.data.scenes import SceneConfig, SceneGenerator

    config = SceneConfig(random_state=random_state, **scene_settings)
    folder = Path(results_dir) / "data"
    wanted = _normalised(asdict(config))
    marker = folder / "scenes.json"
    if (folder / "labels.csv").is_file() and marker.is_file():
        try:
            saved = read_json(marker).get("config")
        except (ValueError, AttributeError):
            saved = None
        if isinstance(saved, dict):  # settings added since (label_skew, topic_balance) had their defaults then
            saved = {**{key: SceneConfig.__dataclass_fields__[key].default for key in _SCENE_SETTINGS_ADDED}, **saved}
        if saved == wanted:
            stored = read_scenes(folder)
            images = load_images([stored.path_of(i) for i in range(len(stored))], size=config.image_size)
            _say(verbose, f"Read {len(stored)} images with {stored.num_labels} labels from {folder}.")
            return MultiLabelDataset(
                image_paths=stored.image_paths,
                label_sets=stored.label_sets,
                vocabulary=stored.vocabulary,
                root=folder,
                images=images,
                name=_scene_name(config),
                format="scenes",
                clean_label_sets=stored.clean_label_sets,
            )
        if isinstance(saved, dict):
            _say(verbose, f"The data set in {folder} was made with other settings ({describe_differences(saved, wanted)}); "
                          "generating it anew.")
    generator = SceneGenerator(config)
    generated = generator.generate()
    generator.write(folder)  # refuses a folder that is neither empty nor an earlier scenes output
    _say(verbose, f"Generated {len(generated)} images with {generated.num_labels} labels into {folder}.")
    return MultiLabelDataset(
        image_paths=generated.image_paths,
        label_sets=generated.label_sets,
        vocabulary=generated.vocabulary,
        root=folder,
        images=generated.images,
        name=_scene_name(config),
        format="scenes",
        clean_label_sets=generated.clean_label_sets,
    )



def scene_topics(results_dir) -> dict:
    """``{label name: scene theme}`` of the emoji scenes in ``RESULTS/data`` (for colouring label maps).

    The theme is :meth:`workbench.data.scenes.SceneGenerator.label_topics` of the
    settings recorded in ``scenes.json`` (glyphs come from the disk cache).

    Raises
    ------
    ValueError
        When ``RESULTS/data`` holds no emoji scenes (run :func:`ensure_scenes` first).
    """
    from workbench.data.scenes import SceneConfig, SceneGenerator

    marker = Path(results_dir) / "data" / "scenes.json"
    try:
        config = SceneConfig(**read_json(marker)["config"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{marker} does not describe emoji scenes ({error}); run ensure_scenes first.") from None
    generator = SceneGenerator(config)
    return dict(zip(generator.vocabulary.names, generator.label_topics()))

# ---------------------------------------------------------------------------------
# counts and embedding
# ---------------------------------------------------------------------------------
def ensure_counts(results_dir, dataset, *, validation_fraction: float, split_random_state: int = 0, verbose: bool = True):
    """Co-occurrence counts of the data set's training split, from ``RESULTS/counts`` when they match.

    Only the training split is counted, so the label embedding never sees the labels
    of the validation images that measure the trained models (the split is
    :meth:`MultiLabelDataset.split` with these settings, as in
    :func:`workbench.experiments.compare.compare`).

    Returns
    -------
    CooccurrenceCounts
        With the data set's vocabulary (groups and subgroups included).
    """
    from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence

    folder = Path(results_dir) / "counts"
    settings = {
        "data": dataset.fingerprint(),
        "validation_fraction": float(validation_fraction),
        "split_random_state": int(split_random_state),
        "counted": "training split",
    }
    status = _status(folder, "counts", settings)
    if status == "complete" and (folder / "counts.json").is_file():
        stored = CooccurrenceCounts.load_json(folder / "counts.json")
        if tuple(stored.vocabulary.names) == tuple(dataset.vocabulary.names):
            _say(verbose, f"Read the counts of {stored.n_images} training images from {folder}.")
            return CooccurrenceCounts(
                n_images=stored.n_images,
                vocabulary=dataset.vocabulary,
                label_counts=stored.label_counts,
                pair_counts=stored.pair_counts,
            )
    _begin(folder, "counts", settings, "stale" if status != "absent" else status, verbose=verbose)
    train_set, _ = dataset.split(validation_fraction=validation_fraction, random_state=split_random_state)
    counts = count_cooccurrence(train_set.labels, train_set.vocabulary)
    counts.save_json(folder / "counts.json", description=f"Co-occurrence counts of the training split of {dataset.name}.")
    _write_settings(folder, "counts", settings, complete=True)
    _say(verbose, f"Counted {counts.n_images} training images into {folder}.")
    return counts


def ensure_embedding(results_dir, counts, *, options, verbose: bool = True):
    """The spectral label embedding of ``counts``, from ``RESULTS/embedding`` when it matches.

    Parameters
    ----------
    counts : CooccurrenceCounts
    options : EmbeddingOptions
        Every PMI and spectral choice (``embedding_dim``, ``policy``, ``diagonal`` …).
        They are recorded in ``RESULTS/embedding/workspace.json``, where
        :func:`recorded_embedding_options` finds them for the notebooks that follow.

    Returns
    -------
    LabelEmbedding
    """
    from workbench.method.embed import EmbeddingOptions, embed_labels
    from workbench.method.embedding import LabelEmbedding

    if not isinstance(options, EmbeddingOptions):
        raise ValueError(f"options must be EmbeddingOptions; got {type(options).__name__}.")
    folder = Path(results_dir) / "embedding"
    settings = {"counts": counts.fingerprint(), "options": options.to_dict()}
    status = _status(folder, "embedding", settings)
    if status == "complete":
        embedding = LabelEmbedding.load(folder)
        _say(verbose, f"Read the {embedding.num_labels} × {embedding.embedding_dim} label embedding from {folder}.")
        return embedding
    _begin(folder, "embedding", settings, "stale" if status != "absent" else status, verbose=verbose)
    embedding = embed_labels(counts, options=options)
    embedding.save(folder)
    _write_settings(folder, "embedding", settings, complete=True)
    _say(verbose, f"Computed the {embedding.num_labels} × {embedding.embedding_dim} label embedding into {folder}.")
    return embedding


def recorded_embedding_options(results_dir, *, default, verbose: bool = True):
    """The embedding options recorded in ``RESULTS/embedding`` (by notebook 02), else ``default``.

    So a setting changed in notebook 02 (``EMBEDDING_DIM``, ``PMI_POLICY`` …) reaches the
    notebooks after it instead of being silently replaced by the profile's value.

    Parameters
    ----------
    default : EmbeddingOptions
        Used when no finished embedding is recorded (notebook 02 has not run).
    verbose : bool
        Print one line saying where the options came from and what they are.

    Returns
    -------
    EmbeddingOptions
    """
    from workbench.method.embed import EmbeddingOptions

    folder = Path(results_dir) / "embedding"
    saved = _read_settings(folder)
    recorded = None
    if saved is not None and saved.get("artefact") == "embedding" and saved.get("complete"):
        try:
            recorded = EmbeddingOptions.from_dict(saved.get("settings", {}).get("options", {}))
        except (TypeError, ValueError):
            recorded = None
    options = recorded or default
    if verbose:
        described = (f"k = {options.embedding_dim}, PMI policy {options.policy!r}, diagonal {options.diagonal!r}, "
                     f"negative eigenvalues {options.negative!r}")
        if recorded is None:
            print(f"No label embedding recorded in {folder} yet (notebook 02 makes it); using the profile's settings: {described}.")
        else:
            differs = default.differences(recorded)
            note = ("; the profile would give " + ", ".join(f"{name} = {old!r}" for name, (old, _) in differs.items())) if differs else ""
            print(f"Using the label embedding settings recorded in {folder}: {described}{note}.")
    return options


def recorded_data_settings(results_dir, *, default: dict, verbose: bool = True) -> dict:
    """The data settings recorded in ``RESULTS`` (by notebook 01), else ``default``.

    So a data setting changed in notebook 01 (``NUM_IMAGES``, ``SEED`` …) reaches the
    notebooks after it instead of being silently replaced by the profile's value (which
    would make them generate another data set).

    Parameters
    ----------
    default : dict
        :meth:`workbench.notebook.profiles.Profile.data_settings`: the scene settings
        (``num_images``, ``num_labels``, ``image_size``, ``max_labels``,
        ``missing_rate``, ``spurious_rate``, ``random_state``) and ``validation_fraction``.
    verbose : bool
        Print one line saying where the settings came from, and what the profile would give.

    Returns
    -------
    dict
        The keys of ``default``: recorded values from ``RESULTS/data/scenes.json`` (the
        scenes) and ``RESULTS/counts`` (``validation_fraction``), defaults for the rest.
    """
    results_dir = Path(results_dir)
    settings, sources = dict(default), []
    try:
        config = read_json(results_dir / "data" / "scenes.json").get("config")
    except (OSError, ValueError, AttributeError):
        config = None
    if isinstance(config, dict):
        settings.update({key: config[key] for key in default if key in config and key != "validation_fraction"})
        sources.append(str(results_dir / "data"))
    counted = _read_settings(results_dir / "counts")
    if counted is not None and counted.get("complete") and "validation_fraction" in counted.get("settings", {}):
        settings["validation_fraction"] = counted["settings"]["validation_fraction"]
        sources.append(str(results_dir / "counts"))
    if verbose:
        described = (f"{settings.get('num_images')} images, {settings.get('num_labels')} labels, "
                     f"{settings.get('image_size')} pixels, seed {settings.get('random_state')}, "
                     f"validation fraction {settings.get('validation_fraction')}")
        if not sources:
            print(f"No data set recorded in {results_dir} yet (notebook 01 makes it); using the profile's settings: {described}.")
        else:
            differs = describe_differences(default, settings)
            note = f"; the profile would give {differs.replace(' → ', ' instead of ')}" if differs != "no setting" else ""
            print(f"Using the data settings recorded in {' and '.join(sources)}: {described}{note}.")
    return settings


# ---------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------
def pmi_train_config(
    *, epochs: int, batch_size: int, model, validation_fraction: float, split_random_state: int = 0, random_state: int = 0, workers: int = 2
):
    """The :class:`~workbench.learning.config.TrainConfig` that :func:`workbench.experiments.compare.compare` gives its pmi head.

    Same head, epochs, batch size, explicit default learning rate, split and seed, so a
    run trained with it is the comparison's ``pmi-seed<random_state>`` run.
    """
    from workbench.experiments.compare import head_config

    return head_config(
        "pmi", seed=random_state, epochs=epochs, batch_size=batch_size, model=model,
        validation_fraction=validation_fraction, split_random_state=split_random_state, workers=workers,
    )


def _run_settings(dataset, embedding, config) -> dict:
    from workbench.experiments.compare import embedding_fingerprint

    train = {k: v for k, v in config.to_dict().items() if k not in ("workers", "verbose")}
    return {"data": dataset.fingerprint(), "embedding": embedding_fingerprint(embedding), "train": train}


def ensure_run(results_dir, dataset, embedding, *, config, callbacks=(), verbose: int = 1):
    """The pmi-head run of ``RESULTS/run/pmi-seed<seed>``: loaded when finished, resumed when interrupted, else trained.

    Parameters
    ----------
    dataset : MultiLabelDataset
        Split with ``config.validation_fraction`` and ``config.split_random_state``.
    embedding : LabelEmbedding
        The label vectors the targets are built from (for example :func:`ensure_embedding`).
    config : TrainConfig
        Usually :func:`pmi_train_config`.
    callbacks : sequence of keras callbacks
        For example :func:`live_history` (only called while training).
    verbose : int
        As in :func:`workbench.learning.training.train`.

    Returns
    -------
    TrainedRun
    """
    from workbench.learning.runs import load_run
    from workbench.learning.training import train

    if config.head != "pmi":
        raise ValueError(f"ensure_run trains the pmi head; got head={config.head!r} (use workbench.learning.training.train).")
    folder = Path(results_dir) / "run"
    run_dir = folder / f"pmi-seed{config.random_state}"
    settings = _run_settings(dataset, embedding, config)
    status = _status(folder, "run", settings)
    if status == "complete" and (run_dir / "model.keras").is_file():
        run = load_run(run_dir)
        if verbose:
            print(f"Loaded the trained run of {run_dir} ({len(run.history)} epochs).")
        return run
    # A stale folder holds only the workspace's own earlier run (it has our settings file): start over.
    _begin(folder, "run", settings, "stale" if status == "complete" else status)
    train_set, validation_set = dataset.split(
        validation_fraction=config.validation_fraction, random_state=config.split_random_state
    )
    run = train(
        train_set, validation=validation_set, config=config, out_dir=run_dir, embedding=embedding,
        callbacks=list(callbacks), verbose=verbose,
    )
    _write_settings(folder, "run", settings, complete=True)
    return run


def _comparison_settings(dataset, embedding, *, heads, seeds, epochs, batch_size, model, validation_fraction,
                         split_random_state) -> dict:
    from workbench.experiments.compare import embedding_fingerprint

    return {
        "data": dataset.fingerprint(),
        "embedding": embedding_fingerprint(embedding),
        "heads": [str(h) for h in heads],
        "seeds": [int(s) for s in seeds],
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "model": model.to_dict(),
        "validation_fraction": float(validation_fraction),
        "split_random_state": int(split_random_state),
        "sigmoid_bias": "label_frequency",  # how compare starts the sigmoid head (comparisons made before differ)
    }


def ensure_comparison(
    results_dir,
    dataset,
    embedding,
    *,
    heads,
    seeds,
    epochs: int,
    batch_size: int,
    model,
    validation_fraction: float,
    split_random_state: int = 0,
    workers: int = 2,
    verbose: int = 1,
):
    """The head comparison of ``RESULTS/comparison`` (:func:`workbench.experiments.compare.compare`), run when absent or different.

    Parameters
    ----------
    embedding : LabelEmbedding
        The label embedding of the pmi head (usually :func:`ensure_embedding`'s); the
        random head takes its ``k``. It is handed to ``compare``, which never computes
        another.

    When ``RESULTS/run`` holds a finished pmi run with exactly the settings the
    comparison gives its pmi head for one of ``seeds`` (see :func:`pmi_train_config`)
    and the same label embedding, it is copied in as that run, so it is not trained
    twice. An interrupted comparison resumes where it stopped.

    Returns
    -------
    dict
        The contents of ``RESULTS/comparison/results.json``:
        ``{"config": {...}, "runs": [{"head", "seed", "history"}, …]}``.
    """
    from workbench.experiments.compare import compare

    folder = Path(results_dir) / "comparison"
    settings = _comparison_settings(
        dataset, embedding, heads=heads, seeds=seeds, epochs=epochs, batch_size=batch_size, model=model,
        validation_fraction=validation_fraction, split_random_state=split_random_state,
    )
    status = _status(folder, "comparison", settings)
    if status == "complete" and (folder / "results.json").is_file():
        if verbose:
            print(f"Read the comparison of {folder} ({len(settings['heads'])} heads × {len(settings['seeds'])} seeds).")
        return read_json(folder / "results.json")
    # a partial comparison with these settings resumes; one with other settings is cleared first
    _begin(folder, "comparison", settings, "stale" if status in ("complete", "stale") else status)
    if "pmi" in settings["heads"]:
        _adopt_pmi_run(
            Path(results_dir) / "run", folder, dataset, embedding, seeds=settings["seeds"], epochs=epochs,
            batch_size=batch_size, model=model, validation_fraction=validation_fraction,
            split_random_state=split_random_state, verbose=verbose,
        )
    results = compare(
        dataset, out_dir=folder, embedding=embedding, heads=settings["heads"], epochs=epochs, seeds=settings["seeds"],
        batch_size=batch_size, model=model, validation_fraction=validation_fraction,
        split_random_state=split_random_state, workers=workers, verbose=verbose,
    )
    _write_settings(folder, "comparison", settings, complete=True)
    return results


def _adopt_pmi_run(run_folder: Path, folder: Path, dataset, embedding, *, seeds, epochs, batch_size, model,
                   validation_fraction, split_random_state, verbose) -> None:
    """Copy ``RESULTS/run/pmi-seed<s>`` in as ``runs/pmi-seed<s>`` when it is exactly that run, finished."""
    saved = _read_settings(run_folder)
    if saved is None or not saved.get("complete"):
        return
    for seed in seeds:
        target = folder / "runs" / f"pmi-seed{seed}"
        if target.exists():
            continue
        config = pmi_train_config(
            epochs=epochs, batch_size=batch_size, model=model, validation_fraction=validation_fraction,
            split_random_state=split_random_state, random_state=seed,
        )
        source = run_folder / f"pmi-seed{seed}"
        if source.is_dir() and saved.get("settings") == _normalised(_run_settings(dataset, embedding, config)):
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("results.sqlite*"))
            if verbose:
                print(f"Reusing the trained run of {source} as the comparison's pmi run with seed {seed}.")
            return
