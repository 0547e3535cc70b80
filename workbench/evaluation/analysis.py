"""Per-label analysis of a trained run: AP of every label against its frequency, and the most confident mistakes.

:func:`analyse_run` scores a run's validation split once (``TrainedRun.label_scores``, the
one scoring path) and records

- every label's average precision beside how often it occurs in the training split (do rare
  labels suffer more with one head than another?);
- the most confident false positives: for each image its highest-scoring wrong label, the
  ``num_errors`` highest of those, each marked when the wrong label is a **high-PMI
  companion** of one of the image's true labels (among that label's ``companions``
  highest-PMI partners in the training counts, with PMI > 0). An embedding that puts
  companions close makes exactly these mistakes: the share of companions among the
  confident errors says how much of a head's error is the co-occurrence structure itself.

``analysis.json`` is written into the run folder. Keras is needed (to score); the result
is plain JSON.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench import _checks
from workbench._io import atomic_write_json
from workbench.evaluation.metrics import json_number, per_label_average_precision

__all__ = ["ANALYSIS_FILE", "analyse_run", "companion_table"]

ANALYSIS_FILE = "analysis.json"


def companion_table(train_set, *, companions: int = 5) -> dict[int, set]:
    """Each label's ``companions`` highest-PMI partners (PMI > 0) in ``train_set``: ``{label: {partners}}``."""
    from workbench.method.cooccurrence import count_cooccurrence

    companions = _checks.integer(companions, "companions")
    counts = count_cooccurrence(train_set.labels, train_set.vocabulary)
    total = float(counts.n_images)
    label_counts = np.asarray(counts.label_counts, dtype=np.float64)
    pairs = counts.pair_counts.toarray() if hasattr(counts.pair_counts, "toarray") else np.asarray(counts.pair_counts)
    pairs = pairs.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(pairs * total / np.outer(label_counts, label_counts))
    pmi[~np.isfinite(pmi)] = -np.inf
    np.fill_diagonal(pmi, -np.inf)
    table = {}
    for label in range(len(pmi)):
        order = np.argsort(-pmi[label], kind="stable")[:companions]
        table[label] = {int(partner) for partner in order if pmi[label, partner] > 0}
    return table


def analyse_run(run, validation_set, train_set, *, num_errors: int = 24, companions: int = 5,
                batch_size: int = 256) -> dict:
    """Per-label AP against training frequency, and the most confident false positives; writes ``analysis.json``.

    Parameters
    ----------
    run : TrainedRun
        A finished, loaded run (:func:`workbench.learning.runs.load_run`); the analysis is
        written to ``run.run_dir``.
    validation_set, train_set : MultiLabelDataset
        The run's two splits (same vocabulary as the run).
    num_errors : int, default=24
    companions : int, default=5
        How many highest-PMI partners of a label count as its companions.

    Returns
    -------
    dict
        ``labels``, ``train_counts``, ``validation_counts``, ``per_label_ap`` (``None``
        for labels absent from validation), ``errors`` (``[{"image", "path", "true",
        "wrong", "score", "companion_of"}]``, most confident first),
        ``companion_share_top`` (share of companions among those errors) and
        ``companion_share_all`` (among every image's top wrong label) and
        ``companion_share_chance`` (the share of an image's wrong labels that are
        companions: what a head blind to co-occurrence would show).
    """
    run_dir = run.run_dir
    if tuple(run.vocabulary.names) != tuple(validation_set.vocabulary.names):
        raise ValueError(f"{run_dir} was trained on other labels than this validation split; give the run's own data.")
    images = run.images_of(validation_set)
    scores = np.asarray(run.label_scores(images, batch_size=batch_size), dtype=np.float64)
    truth = validation_set.labels.toarray() != 0
    per_label = per_label_average_precision(scores, validation_set.labels)
    table = companion_table(train_set, companions=companions)

    wrong_scores = np.where(truth, -np.inf, scores)
    wrong = wrong_scores.argmax(axis=1)
    top_wrong = wrong_scores[np.arange(len(wrong)), wrong]
    labelled = np.flatnonzero(truth.any(axis=1) & np.isfinite(top_wrong))

    def companion_of(image: int) -> int | None:
        partners = [int(label) for label in np.flatnonzero(truth[image]) if int(wrong[image]) in table[int(label)]]
        return partners[0] if partners else None

    marks = {int(image): companion_of(int(image)) for image in labelled}
    order = labelled[np.argsort(-top_wrong[labelled], kind="stable")][: _checks.integer(num_errors, "num_errors")]
    names = run.vocabulary.names
    errors = [{"image": int(image), "path": validation_set.image_paths[image],
               "true": [names[label] for label in np.flatnonzero(truth[image])], "wrong": names[int(wrong[image])],
               "score": json_number(top_wrong[image]),
               "companion_of": None if marks[int(image)] is None else names[marks[int(image)]]} for image in order]
    # by chance: the share of an image's wrong labels that are companions of one of its true labels
    chance = [len(set().union(*(table[int(label)] for label in np.flatnonzero(truth[image]))) -
                  set(np.flatnonzero(truth[image]).tolist())) / max(1, int((~truth[image]).sum())) for image in labelled]
    share = lambda images: float(np.mean([marks[int(image)] is not None for image in images])) if len(images) else None  # noqa: E731
    analysis = {
        "head": run.head,
        "epochs": len(run.history),
        "labels": list(names),
        "train_counts": np.diff(train_set.labels.tocsc().indptr).tolist(),
        "validation_counts": np.diff(validation_set.labels.tocsc().indptr).tolist(),
        "per_label_ap": [json_number(value) for value in per_label],
        "errors": errors,
        "companions": companions,
        "companion_share_top": share(order),
        "companion_share_all": share(labelled),
        "companion_share_chance": float(np.mean(chance)) if chance else None,
    }
    atomic_write_json(Path(run_dir) / ANALYSIS_FILE, analysis)
    return analysis
