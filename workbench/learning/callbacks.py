"""The per-epoch evaluation: a Keras callback that scores the validation split and records the curves.

It scores the model's outputs through :class:`workbench.method.decoding.LabelScorer`
(the scoring path every trained run and classification uses) and measures them with
:func:`workbench.evaluation.metrics.ranking_metrics` (the metrics of ``evaluate_scores`` and each
image's AP, from one ranking).
"""

from __future__ import annotations

import time
from typing import Callable

import keras
import numpy as np
import scipy.sparse as sp

from workbench.evaluation.metrics import average_precision_at_k, check_k, json_number, ranking_metrics
from workbench.method.decoding import LabelScorer

__all__ = ["EvaluationCallback"]


class EvaluationCallback(keras.callbacks.Callback):
    """Evaluate on a validation split after every epoch and record the curves.

    Parameters
    ----------
    inputs : ndarray of shape (N, H, W, 3), dtype uint8, or keras.utils.PyDataset
        Validation images (or batches of them, images only), in the order of
        ``labels``' rows.
    labels : scipy sparse matrix of shape (N, C)
        Their multi-hot labels (noisy, as the data set gives them).
    clean_labels : scipy sparse matrix of shape (N, C), optional
        Their clean labels, when the data set knows them (generated scenes: the labels
        drawn before label noise); adds ``map_at_{map_k}_clean`` to every record.
    vectors : ndarray of shape (C, k), optional
        The label embedding of an embedding head (scores are cosines); ``None``
        for the sigmoid head (scores are the outputs).
    batch_size : int, default=256
        Prediction batch size when ``inputs`` is an array.
    map_k, precision_k : int
        The ``k`` of MAP@k and of P@k/R@k.
    history : list of dict, optional
        Records of earlier epochs (when resuming); new records are appended.
    image_ap : ndarray of shape (E, N), optional
        Each earlier epoch's AP@``map_k`` of every validation image (when resuming).
    verbose : int, default=1
        Print one line per epoch when positive.
    print_function : callable, default=print
    measure : {"all", "map"}, default="all"
        ``"map"``: MAP@``map_k`` alone (each image's AP@``map_k``, no macro AP, P@k, R@k or clean
        labels): the value a stopping rule or a learning-rate tuning run watches, at a fraction of
        the cost (macro AP sorts every label's scores over the images).

    Attributes
    ----------
    history : list of dict
        One record per epoch: ``epoch`` (1-based), ``loss``, ``map_at_{map_k}``,
        ``macro_ap``, ``precision_at_{precision_k}``, ``recall_at_{precision_k}``,
        ``map_at_{map_k}_clean`` (MAP@``map_k`` against the clean labels; only with
        ``clean_labels``), ``seconds`` (wall time of the epoch's training) and ``eval_seconds``;
        undefined values (NaN) are stored as ``None`` so records are valid JSON.
        The record is also merged into the epoch's ``logs`` for later callbacks. With
        ``measure="map"`` a record has ``map_at_{map_k}`` and no other metric.
    image_ap : ndarray of shape (epochs, N), dtype float32
        AP@``map_k`` of every validation image after each epoch (NaN for images
        without labels): a row's mean over its non-NaN entries is that epoch's
        MAP@``map_k``. Kept so that intervals can be drawn over validation images
        (:func:`workbench.evaluation.metrics.bootstrap_interval`).
    """

    def __init__(
        self,
        *,
        inputs,
        labels,
        clean_labels=None,
        vectors=None,
        batch_size: int = 256,
        map_k: int = 100,
        precision_k: int = 5,
        history: list | None = None,
        image_ap=None,
        verbose: int = 1,
        print_function: Callable[[str], None] = print,
        measure: str = "all",
    ):
        super().__init__()
        self.inputs = inputs
        self.labels = sp.csr_matrix(labels)
        self.clean_labels = None if clean_labels is None else sp.csr_matrix(clean_labels)
        if self.clean_labels is not None and self.clean_labels.shape != self.labels.shape:
            raise ValueError(f"clean_labels has shape {self.clean_labels.shape} but labels {self.labels.shape}; give one "
                             "clean label row per validation image.")
        if measure not in ("all", "map"):
            raise ValueError(f"measure must be 'all' or 'map'; got {measure!r}.")
        self.measure = measure
        self.scorer = LabelScorer(vectors)
        self.batch_size = int(batch_size)
        self.map_k = check_k(map_k)
        self.precision_k = check_k(precision_k)
        self.history = list(history or [])
        # earlier epochs without their per-image values (a run from an older version) are NaN rows
        self.image_ap = np.full((len(self.history), self.labels.shape[0]), np.nan, dtype=np.float32)
        if image_ap is not None:
            rows = np.asarray(image_ap, dtype=np.float32).reshape(-1, self.labels.shape[0])[: len(self.history)]
            self.image_ap[: len(rows)] = rows
        self._last_image_ap = None
        self.verbose = verbose
        self.print_function = print_function
        self._epoch_start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = time.perf_counter()

    def evaluate_model(self) -> dict:
        """The metrics of the current model on the validation split."""
        if isinstance(self.inputs, np.ndarray):
            outputs = self.model.predict(self.inputs, batch_size=self.batch_size, verbose=0)
        else:
            outputs = self.model.predict(self.inputs, verbose=0)
        scores = self.scorer(outputs)
        if self.measure == "map":
            image_ap = average_precision_at_k(scores, self.labels, k=self.map_k)
            labelled = image_ap[~np.isnan(image_ap)]
            self._last_image_ap = image_ap.astype(np.float32)
            return {f"map_at_{self.map_k}": float(labelled.mean()) if len(labelled) else float("nan")}
        # one ranking of each image's top labels serves every metric, on the labels and on the clean labels
        image_ap, metrics = ranking_metrics(scores, self.labels, map_k=self.map_k, precision_k=self.precision_k,
                                            clean_labels=self.clean_labels)
        self._last_image_ap = image_ap.astype(np.float32)
        return metrics

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.perf_counter() - (self._epoch_start or time.perf_counter())
        start = time.perf_counter()
        metrics = self.evaluate_model()
        record = {"epoch": int(epoch) + 1}
        if logs and "loss" in logs:
            record["loss"] = json_number(logs["loss"])
        record.update({key: json_number(value) for key, value in metrics.items()})
        record["seconds"] = round(seconds, 3)
        record["eval_seconds"] = round(time.perf_counter() - start, 3)
        self.history.append(record)
        self.image_ap = np.vstack([self.image_ap, self._last_image_ap[None, :]])
        if logs is not None:
            logs.update({key: value for key, value in record.items() if key != "epoch" and value is not None})
        if self.verbose:
            loss = f"loss {float(logs['loss']):.4f}  " if logs and "loss" in logs else ""
            clean = metrics.get(f"map_at_{self.map_k}_clean")
            clean = f" (clean labels {clean:.4f})" if clean is not None else ""
            others = "" if self.measure == "map" else (
                f"  macro AP {metrics['macro_ap']:.4f}  P@{self.precision_k} "
                f"{metrics[f'precision_at_{self.precision_k}']:.4f}  R@{self.precision_k} "
                f"{metrics[f'recall_at_{self.precision_k}']:.4f}")
            self.print_function(
                f"epoch {record['epoch']}: {loss}MAP@{self.map_k} {metrics[f'map_at_{self.map_k}']:.4f}{clean}{others}  "
                f"({seconds:.1f} s train, {record['eval_seconds']:.1f} s eval)"
            )
