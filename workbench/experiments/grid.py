"""Experiment grids: a TOML file of settings, expanded into cells (no Keras, no training).

A grid file has three tables, every key optional with a default (:data:`GRID_DEFAULTS`);
a list value is an axis, a scalar is fixed::

    [data]            # generated emoji scenes; or: path = "DIR" (labels/images/size/noise then do not apply)
    labels = [20]
    images = [200]
    size = 32
    missing_rate = 0.0
    spurious_rate = 0.0
    seed = 0
    groups = "objects"        # or "all": every Unicode emoji group (about 1,870 labels)
    label_skew = 1.0          # the scenes' label_skew and topic_balance (SceneConfig)
    topic_balance = 0.0
    validation_fraction = 0.2
    [embedding]
    dim = [4, 8]
    pmi = ["zero"]
    diagonal = "self"
    negative = "drop"
    [train]
    heads = ["pmi", "random", "identity", "sigmoid"]
    seeds = [0, 1, 2, 3, 4]
    epochs = 10
    image_size = 32
    batch_size = 64
    width = 16                # the trunk: filters of its first block, and its blocks
    depth = 4
    tune_lr = true            # each head's rate tuned on a hold-out of the training split
    tuning_epochs = 0         # the cap of a tuning run (0: epochs, the runs' cap); set it to raise epochs later
                              #   without training the tuning runs further (their rates stay chosen)
    patience = 6              # stop when that hold-out's MAP@100 is flat this many epochs (0: never)
    lr_patience = 2           # divide the rate by 3 when it is flat this many epochs (0: never)
    holdout_fraction = 0.15   # the share of the training split held out for both
    protocol = "end-to-end"   # or "two-stage": one trunk trained once, every head on its cached features
    trunk_fraction = 0.25     # two-stage: the trunk's share of the training split (the heads train on the rest)
    trunk_images = 0          # two-stage, generated scenes: > 0 gives the trunk this many scenes of its own (drawn on)
    trunk_epochs = 15         # two-stage: the trunk's cap of epochs
    trunk_batch_size = 64     # two-stage: the trunk's batch (batch_size is then the heads')
    [train.learning_rates]   # optional, per head (the starting rates; tuning starts its sweep there)
    sigmoid = 0.003

``heads`` and ``seeds`` are run inside every cell; every other list is an axis of cells, but
``tune_lr``, ``tuning_epochs``, ``patience``, ``lr_patience``, ``holdout_fraction``, ``protocol`` and the
``trunk_*`` keys take one value. With ``protocol = "two-stage"`` (:mod:`workbench.learning.twostage`) the
cells of one data and training setting share one trunk, trained once in ``DIR/trunks/``. ``epochs``
is the cap (*max epochs*) of a run that the stopping rule does not stop earlier; ``tuning_epochs``
(where set) is a tuning run's, so that ``epochs`` can be raised on a finished grid and only its runs
that reached the cap train on, their rates as chosen (a cell folder refuses a changed tuning cap).
``heads`` may name any of :data:`~workbench.learning.config.HEADS`, the controls
``shuffled``, ``random-matched``, ``learned`` and ``sigmoid-lowrank`` included.
A **cell** is one data set, one embedding and one training setting; its heads and seeds
are trained there on one split (:func:`workbench.experiments.compare.compare`). Heads
that do not depend on ``k`` (identity, sigmoid) do not depend on the embedding axes, so
they get one cell per data and training setting (named ``…_no-embedding``) instead of one
per embedding: the same runs are never trained twice. Every head that depends on ``k``
(:data:`~workbench.learning.config.K_HEADS`) gets one cell per ``k``. A cell's folder is named by its
axis values (``labels-20_dim-4_pmi-zero``), so a grid grown by a value keeps the names
of the cells it had.

Each value is checked by the record the cell builds from it (:class:`SceneConfig`,
:class:`EmbeddingOptions`, :class:`TrainConfig`, :class:`ModelConfig`; ``_SETTINGS``
says which field), its message prefixed by the file and the key.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from workbench.data.scenes import SceneConfig
from workbench.learning.config import DEFAULT_LEARNING_RATES, K_HEADS, PROTOCOLS, ModelConfig, TrainConfig, TrunkConfig
from workbench.method.embed import EmbeddingOptions

__all__ = ["GRID_DEFAULTS", "CELL_FORMAT", "Cell", "read_grid", "parse_grid", "expand_cells"]

CELL_FORMAT = "workbench-experiment-cell"
#: Heads that depend on the grid's ``dim`` (k), trained in its embedding cells (the others are embedding-free).
GRID_EMBEDDING_HEADS = K_HEADS
#: Every key of a grid file with its default. Lists are axes.
GRID_DEFAULTS = {
    "data": {"path": None, "labels": 20, "images": 200, "size": 32, "missing_rate": 0.0, "spurious_rate": 0.0,
             "seed": 0, "groups": "objects", "label_skew": 1.0, "topic_balance": 0.0, "validation_fraction": 0.2},
    "embedding": {"dim": 16, "pmi": "zero", "diagonal": "self", "negative": "drop"},
    "train": {"heads": ["pmi", "random", "identity", "sigmoid"], "seeds": [0, 1, 2, 3, 4], "epochs": 10,
              "image_size": 32, "batch_size": 64, "width": 16, "depth": 4, "tune_lr": True, "tuning_epochs": 0,
              "patience": 6, "lr_patience": 2, "holdout_fraction": 0.15, "protocol": "end-to-end", "trunk_fraction": 0.25,
              "trunk_images": 0, "trunk_epochs": 15, "trunk_batch_size": 64, "learning_rates": {}},
}
#: Keys that are lists by nature (run inside a cell), not axes of cells.
_INNER = {("train", "heads"), ("train", "seeds")}
#: Keys that take one value (not axes): how every head of the grid is tuned and stopped.
_SINGLE = {("train", "tune_lr"), ("train", "tuning_epochs"), ("train", "patience"), ("train", "lr_patience"),
           ("train", "holdout_fraction"),
           ("train", "protocol"), ("train", "trunk_fraction"), ("train", "trunk_images"), ("train", "trunk_epochs"),
           ("train", "trunk_batch_size")}
#: The cell's ``train`` keys of the two-stage protocol's trunk (present only in a two-stage cell, so that an
#: end-to-end cell's settings are those it had before the protocol existed).
_TRUNK_KEYS = {"trunk_fraction": "fraction", "trunk_images": "images", "trunk_epochs": "epochs",
               "trunk_batch_size": "batch_size"}
#: The cell's ``train`` keys of the schedule and the stopping rule (:data:`~workbench.learning.config.STOPPING_FIELDS`).
_STOPPING_KEYS = ("patience", "lr_patience", "holdout_fraction")
#: Keys of generated scenes (they do not apply with ``path``).
_SCENE_KEYS = ("labels", "images", "size", "missing_rate", "spurious_rate", "seed", "groups", "label_skew", "topic_balance")
#: Scene keys added after grids were first run, with the value an earlier cell (whose ``cell.json`` lacks them) had.
SCENE_KEYS_ADDED = {"groups": "objects", "label_skew": 1.0, "topic_balance": 0.0}
#: Keys a cell folder may change between runs of the grid (it resumes): more epochs, heads or seeds.
GROWABLE = ("epochs", "heads", "seeds")
#: Each setting's validator: the record the cell builds from it (a generated data set, a
#: training run, its trunk, its embedding), that record's field, and the value's type in the grid.
_SETTINGS = {
    ("data", "labels"): (SceneConfig, "num_labels", int),
    ("data", "images"): (SceneConfig, "num_images", int),
    ("data", "size"): (SceneConfig, "image_size", int),
    ("data", "missing_rate"): (SceneConfig, "missing_rate", float),
    ("data", "spurious_rate"): (SceneConfig, "spurious_rate", float),
    ("data", "seed"): (SceneConfig, "random_state", int),
    ("data", "label_skew"): (SceneConfig, "label_skew", float),
    ("data", "topic_balance"): (SceneConfig, "topic_balance", float),
    ("data", "validation_fraction"): (TrainConfig, "validation_fraction", float),
    ("embedding", "dim"): (EmbeddingOptions, "embedding_dim", int),
    ("embedding", "pmi"): (EmbeddingOptions, "policy", str),
    ("embedding", "diagonal"): (EmbeddingOptions, "diagonal", str),
    ("embedding", "negative"): (EmbeddingOptions, "negative", str),
    ("train", "heads"): (TrainConfig, "head", str),
    ("train", "seeds"): (TrainConfig, "random_state", int),
    ("train", "epochs"): (TrainConfig, "epochs", int),
    ("train", "batch_size"): (TrainConfig, "batch_size", int),
    ("train", "image_size"): (ModelConfig, "image_size", int),
    ("train", "width"): (ModelConfig, "width", int),
    ("train", "depth"): (ModelConfig, "depth", int),
    ("train", "patience"): (TrainConfig, "patience", int),
    ("train", "lr_patience"): (TrainConfig, "lr_patience", int),
    ("train", "holdout_fraction"): (TrainConfig, "holdout_fraction", float),
    ("train", "trunk_fraction"): (TrunkConfig, "fraction", float),
    ("train", "trunk_images"): (TrunkConfig, "images", int),
    ("train", "trunk_epochs"): (TrunkConfig, "epochs", int),
    ("train", "trunk_batch_size"): (TrunkConfig, "batch_size", int),
}
#: What a record needs besides the field checked: a scene has images; the trunk's image size is
#: checked with the smallest depth and its depth with an image size that depth halves to 1 (each
#: on its own), then every image size with every depth (:func:`parse_grid`).
_OTHER_FIELDS = {
    SceneConfig: lambda field, value: {"num_images": 1},
    ModelConfig: lambda field, value: {"depth": 1} if field != "depth" else
    {"image_size": 2 ** value if isinstance(value, int) and 0 < value < 64 else 1},
}
#: Short names of the axes in cell names.
_SHORT = {"missing_rate": "missing", "spurious_rate": "spurious", "validation_fraction": "validation",
          "label_skew": "skew", "topic_balance": "balance",
          "image_size": "input", "batch_size": "batch"}


@dataclass(frozen=True)
class Cell:
    """One cell of a grid: its name, data, embedding and training settings, and the heads and seeds it trains.

    Attributes
    ----------
    name : str
        The cell's folder name (its axis values).
    data : dict
        ``path`` or the scene settings, and ``validation_fraction``.
    embedding : dict or None
        ``dim``, ``pmi``, ``diagonal``, ``negative``; ``None`` for a cell of
        embedding-free heads.
    train : dict
        ``epochs``, ``image_size``, ``batch_size``, ``width``, ``depth``, ``tune_lr``, ``patience``,
        ``lr_patience``, ``holdout_fraction``, ``learning_rates`` (and ``tuning_epochs`` where the grid sets it).
    heads : tuple of str
    seeds : tuple of int
    """

    name: str
    data: dict
    embedding: dict | None
    train: dict
    heads: tuple
    seeds: tuple
    axes: dict = field(default_factory=dict)

    def embedding_options(self) -> EmbeddingOptions | None:
        """The :class:`EmbeddingOptions` of the cell's pmi head (``None`` without an embedding)."""
        if self.embedding is None:
            return None
        return EmbeddingOptions(embedding_dim=self.embedding["dim"], policy=self.embedding["pmi"],
                                diagonal=self.embedding["diagonal"], negative=self.embedding["negative"])

    @property
    def protocol(self) -> str:
        """``"end-to-end"`` or ``"two-stage"``."""
        return self.train.get("protocol", "end-to-end")

    def trunk_config(self) -> TrunkConfig | None:
        """The two-stage protocol's trunk settings (``None`` end to end)."""
        if self.protocol != "two-stage":
            return None
        return TrunkConfig(**{field_name: self.train[key] for key, field_name in _TRUNK_KEYS.items()})

    def trunk_name(self) -> str | None:
        """The folder name (under ``DIR/trunks``) of the trunk this cell shares with the cells of its data and training
        setting; ``None`` end to end."""
        if self.protocol != "two-stage":
            return None
        import hashlib
        import json

        shared = {"data": self.data, "train": {key: value for key, value in self.train.items()
                                               if key not in ("epochs", "batch_size", "tune_lr", "tuning_epochs",
                                                              "learning_rates")}}
        digest = hashlib.sha256(json.dumps(shared, sort_keys=True).encode("utf-8")).hexdigest()[:12]
        labels = self.data.get("labels")
        return f"labels-{labels}_{digest}" if labels else f"trunk-{digest}"

    @property
    def tuning_epochs(self) -> int:
        """The cap of a learning-rate tuning run: ``tuning_epochs`` where set, else the runs' (``epochs``)."""
        return int(self.train.get("tuning_epochs") or self.train["epochs"])

    def stopping(self) -> dict:
        """The schedule and stopping settings of the cell's runs (``compare(stopping=…)``; all 0: none)."""
        return {key: self.train[key] for key in _STOPPING_KEYS if key in self.train}

    @classmethod
    def from_settings(cls, settings: dict) -> "Cell":
        """The cell :meth:`settings` describes (as read back from ``cell.json`` or sent to a worker)."""
        return cls(name=settings["name"], data=dict(settings["data"]),
                   embedding=None if settings["embedding"] is None else dict(settings["embedding"]),
                   train=dict(settings["train"]), heads=tuple(settings["heads"]), seeds=tuple(settings["seeds"]))

    def settings(self) -> dict:
        """Everything that defines the cell (recorded in its ``cell.json``)."""
        return {"format": CELL_FORMAT, "name": self.name, "data": self.data, "embedding": self.embedding,
                "train": self.train, "heads": list(self.heads), "seeds": list(self.seeds)}


def read_grid(path: str | Path) -> dict:
    """Read and check a grid file; returns :func:`parse_grid`'s dict (with the file's text under ``"text"``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Grid file {path} not found; give --grid a TOML file (see docs/experiments.md).")
    text = path.read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path} is not valid TOML ({error}); fix the file.") from None
    grid = parse_grid(raw, source=str(path))
    if grid["data"]["path"] is not None:  # a relative data path is relative to the grid file
        given = grid["data"]["path"]
        resolved = [str((path.parent / item).resolve()) for item in _values(given)]
        grid["data"]["path"] = resolved if isinstance(given, list) else resolved[0]
    grid["text"] = text
    return grid


def _values(value) -> list:
    return list(value) if isinstance(value, list) else [value]


def _checked(record, fields: dict, where: str):
    """``record(**fields)``, its ``ValueError`` prefixed by ``where`` (the file and key)."""
    try:
        return record(**fields)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _check_value(section: str, key: str, value, source: str):
    """One value of a grid setting, checked by the record that will use it; its type in the grid."""
    where = f"{source}: [{section}] {key}"
    if key == "path":
        if not isinstance(value, str) or not value:
            raise ValueError(f"{where} must be a folder path (a string); got {value!r}.")
        return value
    if key == "groups":
        if value not in ("objects", "all"):
            raise ValueError(f"{where} must be \"objects\" or \"all\" (every Unicode emoji group); got {value!r}.")
        return value
    if key == "protocol":
        if value not in PROTOCOLS:
            raise ValueError(f"{where} must be one of {', '.join(map(repr, PROTOCOLS))}; got {value!r}.")
        return value
    if key == "tune_lr":
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false; got {value!r}.")
        return value
    if key == "tuning_epochs":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{where} must be a whole number of epochs (0: the runs' cap, epochs); got {value!r}.")
        return value
    record, field_name, kind = _SETTINGS[(section, key)]
    others = _OTHER_FIELDS[record](field_name, value) if record in _OTHER_FIELDS else {}
    made = _checked(record, {**others, field_name: value}, where)
    return kind(getattr(made, field_name))


def _learning_rates(value, source: str) -> dict:
    where = f"{source}: [train.learning_rates]"
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a table of head = rate.")
    rates = {}
    for head, rate in value.items():
        _checked(TrainConfig, {"head": head}, f"{where} {head}")
        rates[head] = _checked(TrainConfig, {"head": head, "learning_rate": rate},
                               f"{where} learning rate of {head}").learning_rate
    return rates


def parse_grid(raw: dict, *, source: str = "grid") -> dict:
    """Check a grid's tables and fill in the defaults.

    Returns
    -------
    dict
        ``{"data": {...}, "embedding": {...}, "train": {...}}``, every key present;
        axes are lists, fixed values scalars, ``heads`` and ``seeds`` lists.
    """
    if not isinstance(raw, dict):
        raise ValueError(f"{source}: a grid is a TOML document with [data], [embedding] and [train] tables.")
    unknown = sorted(set(raw) - set(GRID_DEFAULTS))
    if unknown:
        raise ValueError(f"{source}: unknown table [{unknown[0]}]; a grid has [data], [embedding] and [train].")
    grid = {}
    for section, defaults in GRID_DEFAULTS.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise ValueError(f"{source}: [{section}] must be a table.")
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ValueError(f"{source}: [{section}] has no key {unknown[0]!r}; its keys are {', '.join(defaults)}.")
        table = {}
        for key, default in defaults.items():
            value = given.get(key, default)
            if key == "learning_rates":
                table[key] = _learning_rates(value, source)
                continue
            if value is None:
                table[key] = None
                continue
            if isinstance(value, list) and not value:
                raise ValueError(f"{source}: [{section}] {key} is an empty list; give at least one value.")
            if isinstance(value, list) and (section, key) in _SINGLE:
                raise ValueError(f"{source}: [{section}] {key} takes one value, not a list; run one grid per value.")
            checked = [_check_value(section, key, item, source) for item in _values(value)]
            if len(set(map(repr, checked))) != len(checked):
                raise ValueError(f"{source}: [{section}] {key} repeats a value; list each value once.")
            table[key] = checked if isinstance(value, list) or (section, key) in _INNER else checked[0]
        grid[section] = table
    trunk = ("image_size", "width", "depth")
    for values in itertools.product(*(_values(grid["train"][key]) for key in trunk)):
        _checked(ModelConfig, dict(zip(trunk, values)), f"{source}: [train] image_size and depth")
    if grid["data"]["path"] is not None:
        given_scene_keys = [key for key in _SCENE_KEYS if key in raw.get("data", {})]
        if given_scene_keys:
            raise ValueError(f"{source}: [data] path is set, so {given_scene_keys[0]!r} does not apply; remove it.")
        if grid["train"]["trunk_images"]:
            raise ValueError(f"{source}: [train] trunk_images draws scenes for the trunk, and [data] path is a data set "
                             "on disk; give trunk_fraction instead (the trunk's share of its training split).")
    return grid


def _axes(grid: dict, section: str, keys) -> list[dict]:
    """Every combination of ``keys``' values in ``section`` (lists are axes)."""
    table = grid[section]
    lists = [_values(table[key]) for key in keys]
    return [dict(zip(keys, combination)) for combination in itertools.product(*lists)]


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).replace("/", "-").replace(" ", "-")


def _name(parts: list[tuple[str, object]]) -> str:
    return "_".join(f"{_SHORT.get(key, key)}-{_format(value)}" for key, value in parts) or "cell"


def expand_cells(grid: dict) -> list[Cell]:
    """The grid's cells, in a stable order (data, training, then embedding axes).

    Returns
    -------
    list of Cell
        Names are unique; a cell of embedding-free heads is added for each data and
        training setting when the grid has any (identity, sigmoid): they do not depend on ``k``.
    """
    data_keys = ["path", "validation_fraction"] if grid["data"]["path"] is not None else \
        [*_SCENE_KEYS, "validation_fraction"]
    train_keys = ["epochs", "image_size", "batch_size", "width", "depth"]
    embedding_keys = ["dim", "pmi", "diagonal", "negative"]
    heads = list(grid["train"]["heads"])
    with_embedding = tuple(head for head in heads if head in GRID_EMBEDDING_HEADS)
    without_embedding = tuple(head for head in heads if head not in GRID_EMBEDDING_HEADS)
    is_axis = {(section, key) for section in GRID_DEFAULTS for key, value in grid[section].items()
               if isinstance(value, list) and (section, key) not in _INNER}
    cells = []
    for data in _axes(grid, "data", data_keys):
        for train in _axes(grid, "train", train_keys):
            train = {**train, "tune_lr": grid["train"]["tune_lr"], **{key: grid["train"][key] for key in _STOPPING_KEYS},
                     "learning_rates": dict(grid["train"]["learning_rates"])}
            if grid["train"]["tuning_epochs"]:  # only when set, so that a cell's settings are those it had before
                train["tuning_epochs"] = grid["train"]["tuning_epochs"]
            if grid["train"]["protocol"] == "two-stage":
                train.update({"protocol": "two-stage", **{key: grid["train"][key] for key in _TRUNK_KEYS}})
            named = [(key, data[key]) for key in data_keys if ("data", key) in is_axis] + \
                [(key, train[key]) for key in train_keys if ("train", key) in is_axis]
            if with_embedding:
                for embedding in _axes(grid, "embedding", embedding_keys):
                    parts = named + [(key, embedding[key]) for key in embedding_keys if ("embedding", key) in is_axis]
                    cells.append(Cell(name=_name(parts), data=data, embedding=embedding, train=train,
                                      heads=with_embedding, seeds=tuple(grid["train"]["seeds"]), axes=dict(parts)))
            if without_embedding:
                name = _name(named + [("no", "embedding")]) if named else "no-embedding"
                cells.append(Cell(name=name, data=data, embedding=None, train=train, heads=without_embedding,
                                  seeds=tuple(grid["train"]["seeds"]), axes=dict(named)))
    names = [cell.name for cell in cells]
    if len(set(names)) != len(names):  # cannot happen with distinct axis values; a guard against silent overwrites
        raise ValueError("Two cells of the grid would share a folder; give each axis distinct values.")
    return cells


def default_learning_rate(head: str, cell: Cell) -> float:
    """The cell's learning rate of ``head``: the grid's ``[train.learning_rates]`` or the documented default."""
    return float(cell.train["learning_rates"].get(head, DEFAULT_LEARNING_RATES[head]))

