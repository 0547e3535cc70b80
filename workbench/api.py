"""The public API: one call per step of the method, each returning an object that shows itself.

Use it as ``import workbench as wb`` (the names are loaded lazily, so importing stays
cheap and Keras-free; Keras is imported by the first call that trains or loads a model)::

    import workbench as wb

    data = wb.scenes(num_images=600, num_labels=40, image_size=32, random_state=0)
    embedding = wb.embed(data, dim=16)                  # counted on the training split only
    run = wb.train(data, embedding, head="pmi", epochs=3)
    comparison = wb.compare(data, embedding, heads=("pmi", "random", "sigmoid"), epochs=3)
    comparison.to_frame()                               # a pandas DataFrame, one row per head
    wb.classify(run, data.images[:1]).labels            # label names, best first
    embedding.plot()                                    # the label map

Every function validates its input with a one-line ``ValueError``. The split: ``count``,
``embed``, ``ceiling``, ``train`` and ``compare`` split a data set with the same
``validation_fraction`` (default 0.15) and ``split_random_state`` (default 0), so an
embedding made by :func:`embed` is counted on exactly the images :func:`train` trains on;
an embedding counted on images that include the validation split is refused unless
``allow_overlap=True`` (recorded in the run).
"""

from __future__ import annotations

from pathlib import Path

from workbench.results import (
    Calibration,
    Ceiling,
    Classification,
    Comparison,
    Counts,
    Dataset,
    Embedding,
    Experiment,
    Pmi,
    Run,
    unwrap,
)

__all__ = ["load_dataset", "scenes", "count", "load_counts", "pmi", "embed", "ceiling", "train", "compare", "experiment", "calibrate",
           "classify", "classify_app", "explore", "load_run", "load_experiment", "device", "VALIDATION_FRACTION"]

#: Share of the images every API call holds out for validation unless told otherwise.
VALIDATION_FRACTION = 0.15


def _dataset(data):
    from workbench.data.datasets import MultiLabelDataset

    data = unwrap(data)
    if not isinstance(data, MultiLabelDataset):
        raise ValueError(f"Expected a data set (wb.scenes or wb.load_dataset); got {type(data).__name__}.")
    return data


def _embedding(value):
    from workbench.method.embedding import LabelEmbedding

    value = unwrap(value)
    if value is not None and not isinstance(value, LabelEmbedding):
        raise ValueError(f"Expected a label embedding (wb.embed) or None; got {type(value).__name__}.")
    return value


def _keras():
    """Import Keras once, without TensorFlow's start-up notices (every call that trains or loads a model)."""
    from workbench.learning.startup import import_keras_quietly

    return import_keras_quietly()


def device() -> str:
    """Which Keras backend trains, and on which device, in one line (a visible GPU is used automatically).

    Imports Keras (quietly: TensorFlow's start-up notices stay out of the notebook).
    """
    _keras()
    from workbench.learning.devices import describe_device

    return describe_device()


def _new_folder(prefix: str) -> Path:
    from workbench.learning.runs import temporary_run_dir

    return temporary_run_dir(prefix=prefix)  # removed when the process ends


def load_dataset(path, *, format: str = "auto") -> Dataset:
    """A data set from a folder or file (list CSV, multi-hot CSV, COCO, YOLO, VOC, emoji scenes).

    See :func:`workbench.data.datasets.load_dataset` for the formats.
    """
    from workbench.data.datasets import load_dataset as read

    return Dataset(read(path, format=format))


def scenes(*, num_images: int = 600, num_labels: int | None = 40, image_size: int = 32, max_labels: int = 4,
           missing_rate: float = 0.0, spurious_rate: float = 0.0, groups="objects", label_skew: float = 1.0,
           topic_balance: float = 0.0, random_state: int = 0, out_dir=None,
           validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0) -> Dataset:
    """Emoji scenes: synthetic multi-label images whose labels co-occur by topic.

    Parameters
    ----------
    num_images, num_labels, image_size, max_labels, missing_rate, spurious_rate, groups, label_skew, topic_balance, random_state
        As :func:`workbench.data.scenes.generate_scenes`.
    out_dir : path, optional
        Also write the data set there (``images/``, ``labels.csv``, ``clean_labels.csv``,
        ``vocabulary.csv``) with its data card (``card.md``, ``card.json``).
    validation_fraction, split_random_state
        The split the card counts labels on (every call's split by default).

    Returns
    -------
    Dataset
        Its ``card`` is the data card (:mod:`workbench.data.card`: training images per
        label, look-alike glyphs); ``card_text()`` shows it.
    """
    from workbench.data.scenes import SceneConfig, SceneGenerator, write_scenes

    generator = SceneGenerator(SceneConfig(num_images=num_images, num_labels=num_labels, image_size=image_size,
                                           max_labels=max_labels, missing_rate=missing_rate, spurious_rate=spurious_rate,
                                           groups=groups, label_skew=label_skew, topic_balance=topic_balance,
                                           random_state=random_state))
    if generator.skipped_emoji:
        import warnings

        warnings.warn(f"{len(generator.skipped_emoji)} emoji are not drawable with the emoji font and were skipped.",
                      stacklevel=2)
    dataset = generator.generate()
    card = generator.card(dataset, validation_fraction=validation_fraction, split_random_state=split_random_state)
    if out_dir is not None:
        write_scenes(dataset, out_dir, card=card)
    return Dataset(dataset, card=card)


def _training_split(data, validation_fraction: float, split_random_state: int):
    return _dataset(data).split(validation_fraction=validation_fraction, random_state=split_random_state)[0]


def count(data, *, validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0) -> Counts:
    """Label and pair counts over the **training** split of ``data`` (the validation images are never counted)."""
    from workbench.method.cooccurrence import count_cooccurrence

    train_set = _training_split(data, validation_fraction, split_random_state)
    return Counts(count_cooccurrence(train_set.labels, train_set.vocabulary))


def load_counts(path=None) -> Counts:
    """Co-occurrence counts from a counts JSON (``n_images``, ``labels``, ``label_counts``, ``pair_counts``).

    Real label statistics need no images: ``wb.embed(wb.load_counts(path), dim=…)``. Without
    ``path``, the MS-COCO 2014 training counts that ship with the package (80 labels, 82,081
    images; :func:`workbench.data.bundled.coco2014_counts_path`).
    """
    from workbench.data.bundled import coco2014_counts_path
    from workbench.method.cooccurrence import CooccurrenceCounts

    return Counts(CooccurrenceCounts.load_json(coco2014_counts_path() if path is None else path))


def _counts(data, validation_fraction: float, split_random_state: int):
    from workbench.method.cooccurrence import CooccurrenceCounts

    counts = unwrap(data)
    if not isinstance(counts, CooccurrenceCounts):
        counts = unwrap(count(data, validation_fraction=validation_fraction, split_random_state=split_random_state))
    return counts


def pmi(data, *, options=None, validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0,
        **option_values) -> Pmi:
    """The PMI matrix of a data set's training split, or of counts, under a policy for pairs never seen together.

    Parameters
    ----------
    data : data set or counts
        As :func:`embed`: a data set is split and only its training images are counted.
    options : EmbeddingOptions, optional
        Take its PMI choices (the matrix that :func:`embed` factorises with these options);
        or give them as keywords: ``policy`` (``"zero"``, ``"ppmi"``, ``"clip"``, ``"smooth"``),
        ``diagonal`` (``"self"``, ``"zero"``), ``clip_value``, ``smoothing``,
        ``context_exponent``, ``shift`` (:func:`workbench.method.pmi.pmi_matrix`).
    """
    from workbench.method.pmi import pmi_matrix

    if options is not None and option_values:
        raise ValueError("Give the PMI choices either as options=EmbeddingOptions(...) or as keywords, not both.")
    if options is not None:
        option_values = options.pmi_options()
    counts = _counts(data, validation_fraction, split_random_state)
    return Pmi(pmi_matrix(counts, **option_values), counts)


def embed(data, *, dim: int | None = None, validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0,
          options=None, **option_values) -> Embedding:
    """The PMI label embedding ``E = U Σ^½`` (first ``k`` columns) of a data set's training split, or of counts.

    Parameters
    ----------
    data : data set or counts
        A data set is split (``validation_fraction``, ``split_random_state``) and only its
        training images are counted; counts (``wb.count``, or
        :meth:`CooccurrenceCounts.load_json` of real statistics) are used as they are.
    dim : int, optional
        ``k`` (``embedding_dim``; default 64).
    options : EmbeddingOptions, optional
        Every PMI and spectral choice at once; or give them as keywords (``policy="ppmi"``,
        ``diagonal="zero"``, ``negative="drop"``, …: :class:`~workbench.method.embed.EmbeddingOptions`).
    """
    from workbench.method.embed import EmbeddingOptions, embed_labels

    if dim is not None:
        option_values["embedding_dim"] = dim
    if options is not None and option_values:
        raise ValueError("Give the embedding's choices either as options=EmbeddingOptions(...) or as keywords, not both.")
    options = options if options is not None else EmbeddingOptions(**option_values)
    return Embedding(embed_labels(_counts(data, validation_fraction, split_random_state), options=options))


def ceiling(data, *, dims=(4, 8, 16, 32, 64), embeddings=("pmi", "random", "identity"), options=None,
            decoder: str = "cosine", validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0,
            random_state: int = 0) -> Ceiling:
    """The decoding ceiling against ``k``: the MAP@100 that decoding perfect targets reaches (no training)."""
    from workbench.evaluation.ceiling import decoding_ceiling

    return Ceiling(decoding_ceiling(_dataset(data), dims=dims, embeddings=embeddings, options=options, decoder=decoder,
                                    validation_fraction=validation_fraction, split_random_state=split_random_state,
                                    random_state=random_state))


def _model(image_size: int, model):
    from workbench.learning.config import ModelConfig

    if model is None:
        return ModelConfig(image_size=image_size)
    if isinstance(model, dict):
        return ModelConfig.from_dict({"image_size": image_size, **model})
    if not isinstance(model, ModelConfig):
        raise ValueError(f"model must be a ModelConfig or a dict of its fields; got {type(model).__name__}.")
    return model


def _image_size(dataset) -> int:
    return int(dataset.images.shape[1]) if dataset.images is not None else 64


def train(data, embedding=None, *, head: str = "pmi", epochs: int = 10, batch_size: int = 64,
          learning_rate: float | None = None, dim: int | None = None, model=None,
          validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0, random_state: int = 0,
          out_dir=None, allow_overlap: bool = False, verbose: int = 0, callbacks=(), stopping: dict | None = None) -> Run:
    """Train one head and return the run; without ``out_dir`` it lives in a temporary folder (``run.save(path)``).

    Parameters
    ----------
    data : data set
    embedding : label embedding, optional
        Required for ``head="pmi"`` and its controls ``"shuffled"`` and
        ``"random-matched"`` (it must be counted on the training split: see the module
        docstring); gives ``k`` to the random, learned and sigmoid-lowrank heads.
    head : str
        ``"pmi"``, ``"random"``, ``"identity"``, ``"sigmoid"``, or a control: ``"shuffled"``,
        ``"random-matched"``, ``"learned"``, ``"sigmoid-lowrank"`` (docs/experiments.md).
    learning_rate : float, optional
        Default: the head's (:data:`~workbench.learning.config.DEFAULT_LEARNING_RATES`).
    dim : int, optional
        ``k`` of the random head and of the learned and sigmoid-lowrank bottlenecks
        (default: the embedding's).
    model : ModelConfig or dict, optional
        The trunk (default: ``ModelConfig`` at the data's image size).
    verbose : int, default=0
        0 silent; 1 one line per epoch.
    stopping : dict, optional
        The learning-rate schedule and the stopping rule on a hold-out of the training split
        (``{"patience": 4, "lr_patience": 2, "holdout_fraction": 0.15}``, any of
        :data:`~workbench.learning.config.STOPPING_FIELDS`); ``epochs`` is then the cap. Default:
        none, every epoch is trained.
    """
    dataset, embedding = _dataset(data), _embedding(embedding)  # before Keras is imported
    _keras()
    from workbench.experiments.compare import head_config
    from workbench.learning.training import train as train_head

    config = head_config(head, seed=random_state, epochs=epochs, batch_size=batch_size,
                         model=_model(_image_size(dataset), model), embedding_dim=dim, learning_rate=learning_rate,
                         validation_fraction=validation_fraction, split_random_state=split_random_state,
                         stopping=stopping)
    return Run(train_head(dataset, config=config, out_dir=out_dir, embedding=embedding,
                          allow_overlap=allow_overlap, verbose=verbose, callbacks=callbacks))


def load_run(run_dir) -> Run:
    """A run folder written by ``wb.train(..., out_dir=…)``, ``run.save`` or ``workbench train``."""
    _keras()
    from workbench.learning.runs import load_run as read

    return Run(read(run_dir))


def compare(data, embedding=None, *, heads=("pmi", "random", "identity", "sigmoid"), seeds=(0, 1, 2, 3, 4), epochs: int = 10,
            batch_size: int = 64, model=None, learning_rates: dict | None = None,
            validation_fraction: float = VALIDATION_FRACTION, split_random_state: int = 0, out_dir=None,
            allow_overlap: bool = False, verbose: int = 0, stopping: dict | None = None) -> Comparison:
    """Train every head with every seed on one split, against one embedding; a rerun on ``out_dir`` resumes.

    ``embedding`` defaults to ``wb.embed(data)`` at the same split. Without ``out_dir`` the
    runs live in a temporary folder for this session. ``stopping``: as :func:`train`'s, for
    every run (each holds out the same images).
    """
    from workbench.experiments.compare import compare as run_comparison
    from workbench.method.embed import EmbeddingOptions

    dataset = _dataset(data)
    _keras()
    folder = Path(out_dir) if out_dir is not None else _new_folder("workbench-comparison-")
    chosen = _embedding(embedding)
    results = run_comparison(dataset, out_dir=folder, embedding=chosen if chosen is not None else EmbeddingOptions(),
                             heads=heads, seeds=seeds, epochs=epochs, batch_size=batch_size,
                             model=_model(_image_size(dataset), model), learning_rates=learning_rates,
                             validation_fraction=validation_fraction, split_random_state=split_random_state,
                             allow_overlap=allow_overlap, verbose=verbose, stopping=stopping)
    return Comparison(results, folder)


def experiment(grid, *, out_dir, cores: int | None = 1, tune_lr: bool | None = None, print_function=print) -> Experiment:
    """Run a grid of comparisons (a TOML file, or its tables as a dict) into ``out_dir``; finished cells are skipped.

    See ``docs/experiments.md`` for the grid file.
    """
    from workbench.experiments.experiment import run_experiment
    from workbench.experiments.grid import parse_grid, read_grid
    from workbench.experiments.results import read_results

    grid = parse_grid(grid) if isinstance(grid, dict) else read_grid(grid)
    run_experiment(grid, out_dir=out_dir, cores=cores, tune_lr=tune_lr, print_function=print_function)
    return Experiment(read_results(out_dir), out_dir)


def load_experiment(path=None) -> Experiment:
    """An experiment folder's results (``results.json``; ``workbench experiment``'s output or a published study).

    No ``path``: the study published with the repository (``docs/study/``, what ``docs/study.md``
    is written from), for reading its results, comparisons and verdicts without running it.
    """
    from workbench.experiments.study import published_study_folder
    from workbench.experiments.results import read_results

    folder = published_study_folder() if path is None else Path(path)
    return Experiment(read_results(folder), folder)


def calibrate(run, data, *, decoders=None, test_fraction: float = 0.5, random_state: int = 0) -> Calibration:
    """Fit the run's operating points (thresholds, top-N) on half its validation split; measure them on the rest."""
    _keras()
    from workbench.evaluation.calibration import calibrate as fit
    from workbench.learning.runs import TrainedRun, load_run as read

    run = unwrap(run)
    if not isinstance(run, TrainedRun):
        run = read(run)
    dataset = _dataset(data)
    return Calibration(fit(run, dataset, decoders=decoders, test_fraction=test_fraction, random_state=random_state),
                       run=run, dataset=dataset)


def classify(run, images, *, top: int | None = 5, threshold: float | str | None = None,
             decoder: str = "cosine", keep_pixels: bool = False) -> Classification:
    """Rank labels for images: paths, file bytes, or decoded arrays ``(N, H, W, 3)`` / ``(H, W, 3)`` uint8.

    Returns label names and scores per image, best first (``top`` of them and/or those at
    or above ``threshold``; ``threshold="auto"`` takes the run's calibrated one). A file that
    cannot be read gives that image an ``error``, never an exception. ``keep_pixels``: keep
    each file's decoded image (what the model saw) for ``.plot()``; arrays are always kept.
    """
    import numpy as np

    _keras()
    from workbench.apps.classify import ClassificationResult, Classifier
    from workbench.learning.runs import TrainedRun, load_run as read
    from workbench.method.decoding import rank_labels, setting_name

    run = unwrap(run)
    if not isinstance(run, TrainedRun):
        run = read(run)
    classifier = Classifier(run, decoder=decoder)
    if isinstance(images, np.ndarray):  # already decoded at the run's size: scored as they are
        pixels = run._check_images(images)
        threshold = classifier.resolve_threshold(threshold)
        names = run.vocabulary.names
        setting = setting_name(top=top, threshold=threshold)
        ranked = rank_labels(classifier.scores(pixels), top=top, threshold=threshold)
        return Classification(
            ClassificationResult(image=f"image {i}", labels=tuple((names[label], float(score)) for label, score in row),
                                 setting=setting, pixels=pixels[i])
            for i, row in enumerate(ranked))
    sources = [images] if isinstance(images, (str, Path, bytes)) else list(images)
    return Classification(classifier.classify(sources, top=top, threshold=threshold, keep_pixels=keep_pixels))


def classify_app(run, **options):
    """The upload app (:class:`~workbench.apps.widgets.ClassifyApp`) for a run: upload images, see their ranked labels.

    ``run``: a run or its folder. ``options``: the app's (``top``, ``threshold``, ``title``,
    ``store_path``, ``use_store`` …); classifications are stored in ``RUN_DIR/results.sqlite``.
    """
    _keras()
    from workbench.apps.widgets import ClassifyApp

    run = unwrap(run)
    return ClassifyApp.for_run(getattr(run, "run_dir", run), **options)


def explore(embedding, *, counts=None, pmi=None, label: str | None = None, top: int = 10, map_method: str = "umap",
            random_state: int = 0, deterministic: bool = False, compare=None, run=None, data=None,
            max_images: int | None = 2000):
    """The label explorer widget (:class:`~workbench.apps.explorer.LabelExplorer`): every label on an interactive
    WebGL map with search, a label's ``top`` nearest neighbours by cosine and by PMI (``pmi``; co-occurrences from
    ``counts``), lasso selection to a frame or CSV, and export of the map.

    ``compare``: a second embedding of the same labels, drawn beside the first (selection and hover linked).
    ``run`` with ``data`` (the run's data set): colour by the run's per-label AP on its validation split and, for an
    embedding head, its predictions for up to ``max_images`` validation images as a second layer of the same map.
    An embedding from ``wb.embed`` or a workspace shares its map coordinates with ``embedding.plot``;
    ``deterministic``: a seeded one-core UMAP (slower; see :func:`~workbench.apps.labelmap.label_coordinates`).
    """
    from workbench.apps.explorer import ImagePoints, LabelExplorer

    coordinates = images = per_label_ap = None
    if run is not None:
        if data is None:
            raise ValueError("explore(run=...) needs data=, the run's data set (its validation images are scored).")
        _keras()
        from workbench.evaluation.metrics import per_label_average_precision
        from workbench.learning.runs import TrainedRun, load_run as read

        trained, dataset = unwrap(run), _dataset(data)
        trained = trained if isinstance(trained, TrainedRun) else read(trained)
        _, validation = trained.splits(dataset)
        scores = trained.label_scores(trained.images_of(validation))
        per_label_ap = dict(zip(trained.vocabulary.names, per_label_average_precision(scores, validation.labels)))
        if trained.embedding is not None and max_images != 0:
            images = ImagePoints.of_run(trained, dataset, max_images=max_images, random_state=random_state)
    if isinstance(embedding, Embedding) and images is None:  # computed once, shared with embedding.plot
        coordinates = embedding.coordinates(method=map_method, random_state=random_state, deterministic=deterministic)
    matrix = getattr(unwrap(pmi), "matrix", pmi)  # a PMI result (wb.pmi), or the matrix itself
    return LabelExplorer(embedding=unwrap(embedding), counts=unwrap(counts), pmi=matrix, coordinates=coordinates,
                         label=label, top=top, map_method=map_method, random_state=random_state,
                         deterministic=deterministic, compare=unwrap(compare) if compare is not None else None,
                         images=images, per_label_ap=per_label_ap)
