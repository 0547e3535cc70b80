"""A study published with what its text needs from the experiment folder: AP per frequency bin, ceilings, the run's record.

:func:`publish_study` copies an experiment's ``results.csv``, ``comparisons.csv`` and ``results.json``
(without its per-label analyses) into a folder (``docs/study/large/`` for the C ≥ 1,500 study)
and writes beside them three small files computed from the experiment folder, which is not
published itself:

- ``frequency_bins.csv`` (:func:`frequency_bin_ap`): per run (cell, head, k, seed) and per bin of
  labels by their training images (:data:`FREQUENCY_BINS`: fewer than 20, 20–49, 50–99, 100–199,
  200 or more), the mean AP over the bin's labels, from the run's ``analysis.json``
  (``per_label_ap``, ``train_counts``: the images the heads trained on; a label without a
  validation positive has no AP and is skipped);
- ``ceiling.csv`` (:func:`ceiling_rows`): the decoding ceiling of every embedding cell for pmi and
  random at the k its heads were trained with, and the identity's, from each cell's
  ``ceiling.json``; a pmi or random row the cell lacks is computed here
  (:func:`workbench.evaluation.ceiling.decoding_ceiling` on the cell's data set, the same split and
  seed as the run's, which draws the data set again: minutes at 100,000 images);
- ``run.json`` (:func:`run_record`): each trunk's record (``trunks/<name>/trunk.json``), every
  invocation of ``workbench experiment`` (``experiment.json``) and their summed wall-clock seconds.

:func:`load_published` reads the folder back (:func:`workbench.experiments.study.load_study` and the
three files). Keras-free; pandas is imported when reading.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path

import numpy as np

from workbench._io import atomic_write_json, atomic_write_text, read_json
from workbench.experiments.results import read_results

__all__ = ["FREQUENCY_BINS", "BINS_FILE", "CEILING_FILE", "RUN_FILE", "bin_name", "label_bins", "frequency_bin_ap",
           "ceiling_rows", "run_record", "publish_study", "load_published"]

#: Bins of labels by training images: ``(low, high)``, ``low <= count < high`` (``None``: no upper bound).
FREQUENCY_BINS = ((0, 20), (20, 50), (50, 100), (100, 200), (200, None))
BINS_FILE = "frequency_bins.csv"
CEILING_FILE = "ceiling.csv"
RUN_FILE = "run.json"
_BIN_COLUMNS = ("cell", "head", "dim", "seed", "bin", "low", "high", "labels", "mean_ap")
_CEILING_COLUMNS = ("cell", "dim", "embedding", "dim_achieved", "map_at_100", "macro_ap", "computed")
_CEILING_NAMES = ("pmi", "random")


def bin_name(low: int, high: int | None) -> str:
    """``"<20"``, ``"20–49"``, ``"≥200"``: the bin of training counts ``low <= count < high``."""
    if high is None:
        return f"≥{low:,}"
    return f"<{high:,}" if low == 0 else f"{low:,}–{high - 1:,}"


def label_bins(train_counts) -> np.ndarray:
    """Each label's bin, an index into :data:`FREQUENCY_BINS`.

    Parameters
    ----------
    train_counts : array-like of int, shape (C,)
        Training images of each label.

    Returns
    -------
    numpy.ndarray of int, shape (C,)
    """
    edges = [low for low, _ in FREQUENCY_BINS[1:]]
    return np.searchsorted(np.asarray(edges), np.asarray(train_counts, dtype=np.int64), side="right")


def _cell_dim(results: dict, cell: str) -> int | None:
    embedding = (results.get("cells", {}).get(cell, {}).get("settings") or {}).get("embedding")
    return None if not embedding else int(embedding["dim"])


def frequency_bin_ap(source, *, results: dict | None = None) -> list[dict]:
    """Every published run's mean AP per bin of labels by training images (:data:`FREQUENCY_BINS`).

    Parameters
    ----------
    source : path
        An experiment folder (``cells/<cell>/runs/<head>-seed<seed>/analysis.json``).
    results : dict, optional
        Its ``results.json`` (read when not given); its rows say which runs are published.

    Returns
    -------
    list of dict
        One per (run, bin), in the rows' order: ``cell``, ``head``, ``dim`` (the cell's k; None for
        the embedding-free cell), ``seed``, ``bin`` (:func:`bin_name`), ``low``, ``high``, ``labels``
        (the bin's labels with an AP) and ``mean_ap`` (their mean AP; NaN when there are none).
    """
    source = Path(source)
    results = read_results(source) if results is None else results
    found = []
    for row in results["rows"]:
        path = source / "cells" / row["cell"] / "runs" / f"{row['head']}-seed{row['seed']}" / "analysis.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found; run 'workbench experiment' on {source} again to finish its "
                                    f"analyses.")
        analysis = read_json(path)
        ap = np.array([np.nan if value is None else float(value) for value in analysis["per_label_ap"]])
        bins = label_bins(analysis["train_counts"])
        for index, (low, high) in enumerate(FREQUENCY_BINS):
            values = ap[(bins == index) & ~np.isnan(ap)]
            found.append({"cell": row["cell"], "head": row["head"], "dim": _cell_dim(results, row["cell"]),
                          "seed": int(row["seed"]), "bin": bin_name(low, high), "low": low, "high": high,
                          "labels": int(len(values)), "mean_ap": float(values.mean()) if len(values) else math.nan})
    return found


def _computed_ceiling(source: Path, cell: str, dims: list[int], names: list[str]) -> list[dict]:
    """The ceiling rows ``names`` of ``cell`` computed now, on its data set and split, as the run computes them."""
    from workbench.evaluation.ceiling import decoding_ceiling
    from workbench.experiments.experiment import _cell_dataset
    from workbench.experiments.grid import Cell

    settings = Cell.from_settings(read_json(source / "cells" / cell / "cell.json"))
    report = decoding_ceiling(_cell_dataset(settings), dims=dims, embeddings=names,
                              options=settings.embedding_options(),
                              validation_fraction=settings.data["validation_fraction"], split_random_state=0)
    return report["rows"]


def ceiling_rows(source, *, results: dict | None = None) -> list[dict]:
    """The decoding ceiling of every cell: pmi and random at each embedding cell's k, and the identity.

    Returns
    -------
    list of dict
        ``cell``, ``dim`` (the cell's k; None for the identity), ``embedding``, ``dim_achieved``,
        ``map_at_100``, ``macro_ap`` and ``computed`` (``"with the run"``: the cell's ``ceiling.json``;
        ``"at publication"``: computed by this function, the cell having none).
    """
    source = Path(source)
    results = read_results(source) if results is None else results
    found = []
    for cell in results.get("cells", {}):
        path = source / "cells" / cell / "ceiling.json"
        rows = read_json(path).get("rows", []) if path.is_file() else []
        dim = _cell_dim(results, cell)
        kept = [(row, "with the run") for row in rows if row["embedding"] in (*_CEILING_NAMES, "identity")]
        if dim is not None:
            missing = [name for name in _CEILING_NAMES if name not in {row["embedding"] for row in rows}]
            if missing:  # at the k the cell's heads had (the PMI spectrum may give fewer than asked)
                achieved = [int(row["dim_achieved"]) for row in results["rows"]
                            if row["cell"] == cell and row["head"] == "pmi" and row.get("dim_achieved") is not None]
                used = [int(row["dim"]) for row in rows if row["embedding"] == "pmi"] or achieved[:1] or [dim]
                kept += [(row, "at publication") for row in _computed_ceiling(source, cell, used, missing)]
        order = {name: index for index, name in enumerate((*_CEILING_NAMES, "identity"))}
        for row, computed in sorted(kept, key=lambda pair: order[pair[0]["embedding"]]):
            found.append({"cell": cell, "dim": None if row["embedding"] == "identity" else dim,
                          "embedding": row["embedding"], "dim_achieved": int(row["dim_achieved"]),
                          "map_at_100": row["map_at_100"], "macro_ap": row["macro_ap"], "computed": computed})
    return found


def run_record(source) -> dict:
    """``{"trunks": {name: trunk.json}, "invocations": [...], "seconds": their sum, "cells": {name: seconds}}``.

    Each trunk's record gets ``stopping``: its training run's stopping-rule state (``run/config.json``;
    ``stopped_epoch`` ``None`` when it reached its cap of epochs without the rule firing: not converged).

    ``seconds`` is the experiment's actual wall-clock time: every invocation of ``workbench
    experiment`` on the folder (``experiment.json``'s ``invocations``), summed; ``None`` when the
    folder records none.
    """
    source = Path(source)
    marker = source / "experiment.json"
    invocations = (read_json(marker).get("invocations") or []) if marker.is_file() else []
    trunks = {}
    for path in sorted((source / "trunks").glob("*/trunk.json")):
        run_config = path.parent / "run" / "config.json"
        stopping = (read_json(run_config).get("stopping") if run_config.is_file() else None) or {}
        trunks[path.parent.name] = {**read_json(path), "stopping": stopping}
    cells = {path.parent.name: read_json(path).get("seconds") for path in sorted((source / "cells").glob("*/cell.json"))}
    seconds = round(sum(float(entry.get("seconds") or 0.0) for entry in invocations), 3) if invocations else None
    return {"trunks": trunks, "invocations": invocations, "seconds": seconds, "cells": cells}


def _csv(rows: list[dict], columns) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if row[key] is None or (isinstance(row[key], float) and math.isnan(row[key]))
                         else row[key] for key in columns})
    return buffer.getvalue()


def publish_study(source, folder) -> None:
    """Publish the experiment ``source`` into ``folder``: its results and the three derived files.

    ``folder`` gets ``results.csv`` and ``comparisons.csv`` (copied), ``results.json`` (without
    ``per_label``), :data:`BINS_FILE`, :data:`CEILING_FILE` and :data:`RUN_FILE`; it is created
    when missing. Nothing is written unless every file can be computed.
    """
    source, folder = Path(source), Path(folder)
    results = read_results(source)
    if not results.get("comparisons"):
        raise ValueError(f"{source}/results.json has no comparisons; run 'workbench experiment' on it again first.")
    bins = frequency_bin_ap(source, results=results)
    ceiling = ceiling_rows(source, results=results)
    record = run_record(source)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "comparisons.csv"):
        shutil.copyfile(source / name, folder / name)
    atomic_write_json(folder / "results.json", {key: value for key, value in results.items() if key != "per_label"})
    atomic_write_text(folder / BINS_FILE, _csv(bins, _BIN_COLUMNS))
    atomic_write_text(folder / CEILING_FILE, _csv(ceiling, _CEILING_COLUMNS))
    atomic_write_json(folder / RUN_FILE, record)


def load_published(folder) -> dict:
    """A study published by :func:`publish_study`: :func:`~workbench.experiments.study.load_study`'s dict with
    ``bins`` and ``ceiling`` (the CSVs as DataFrames) and ``run`` (``run.json``)."""
    import pandas as pd

    from workbench.experiments.study import load_study

    folder = Path(folder)
    for name in (BINS_FILE, CEILING_FILE, RUN_FILE):
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{folder / name} not found; publish the experiment again "
                                    f"(docs/study/write_study.py --publish-large EXPERIMENT_DIR).")
    study = load_study(folder)
    return {**study, "bins": pd.read_csv(folder / BINS_FILE), "ceiling": pd.read_csv(folder / CEILING_FILE),
            "run": read_json(folder / RUN_FILE)}
