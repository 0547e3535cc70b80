"""Converging on a hold-out of the training split: reduce-on-plateau of the learning rate and early stopping.

:class:`PlateauRule` decides (no Keras): after every epoch it is given the hold-out
MAP@k and says whether the rate is reduced or training stops. :class:`PlateauCallback`
applies it in ``fit``: it scores the hold-out through the same scoring path as the
validation split (an :class:`~workbench.learning.callbacks.EvaluationCallback` that only
measures MAP@k alone), writes ``holdout_map_at_{k}``, the seconds that scoring took
(``holdout_eval_seconds``) and the epoch's ``learning_rate`` into the epoch's history record,
sets the optimizer's rate and ``model.stop_training``. The rule's state is a small dict
(:meth:`PlateauRule.to_dict`) that :func:`workbench.learning.training.train` keeps in every
checkpoint's ``state.json``, so a killed run resumes with the same best value, counters and
rate, and in ``config.json`` (``stopping``) when the run ends.

The hold-out is never the validation split of a reported run: :func:`holdout_split` takes
it from the training split (seed ``split_random_state + 1``, the same images for every head
and seed). A learning-rate tuning run, whose validation images are themselves that
hold-out, monitors its validation metric instead (``train(monitor_validation=True)``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import keras

__all__ = ["PlateauRule", "PlateauCallback", "holdout_split"]


def holdout_split(train_set, *, fraction: float, split_random_state: int):
    """``(fit, holdout)``: the training split split again, ``fraction`` of it held out with seed ``split_random_state + 1``.

    Parameters
    ----------
    train_set : MultiLabelDataset
        The training split (never the validation split).
    fraction : float in (0, 1)
    split_random_state : int
        The seed of the train/validation split; the hold-out uses the next one, so
        every head and seed of a comparison, and the learning-rate tuning of its cell,
        hold out the same images.
    """
    return train_set.split(validation_fraction=fraction, random_state=int(split_random_state) + 1)


@dataclass
class PlateauRule:
    """The schedule and the stopping rule, as state that survives a resume.

    Parameters
    ----------
    learning_rate : float
        The rate the run starts with (then the current rate).
    patience : int
        Stop after this many epochs without improvement (0: never).
    lr_patience : int
        Multiply the rate by ``lr_factor`` after this many epochs without improvement,
        counted again after each reduction (0: never).
    lr_factor : float
    min_delta : float
        An improvement exceeds the best value by more than this.

    Attributes
    ----------
    best, best_epoch : float or None, int or None
        The best hold-out value and its (1-based) epoch.
    wait, lr_wait : int
        Epochs since the last improvement; since the last improvement or reduction.
    reductions : list of int
        The epochs after which the rate was reduced.
    stopped_epoch : int or None
        The epoch after which the rule stopped the run.
    epochs_seen : int
        Epochs the rule has been given.
    """

    learning_rate: float
    patience: int = 0
    lr_patience: int = 0
    lr_factor: float = 1 / 3
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int | None = None
    wait: int = 0
    lr_wait: int = 0
    reductions: list = field(default_factory=list)
    stopped_epoch: int | None = None
    epochs_seen: int = 0

    @classmethod
    def of(cls, config) -> "PlateauRule":
        """The rule of a :class:`~workbench.learning.config.TrainConfig`, at its starting rate."""
        return cls(learning_rate=config.resolved_learning_rate, patience=config.patience,
                   lr_patience=config.lr_patience, lr_factor=config.lr_factor, min_delta=config.min_delta)

    def update(self, epoch: int, value) -> str | None:
        """Take epoch ``epoch``'s hold-out value; ``"stop"``, ``"reduce"`` (the rate is already lowered) or ``None``.

        An undefined value (``None`` or NaN: no labelled hold-out image) never improves.
        Stopping wins over a reduction due in the same epoch.
        """
        self.epochs_seen = int(epoch)
        value = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
        if value is not None and (self.best is None or value > self.best + self.min_delta):
            self.best, self.best_epoch, self.wait, self.lr_wait = value, int(epoch), 0, 0
            return None
        self.wait += 1
        self.lr_wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = int(epoch)
            return "stop"
        if self.lr_patience and self.lr_wait >= self.lr_patience:
            self.learning_rate = float(self.learning_rate * self.lr_factor)
            self.lr_wait = 0
            self.reductions.append(int(epoch))
            return "reduce"
        return None

    @property
    def epochs_to_convergence(self) -> int | None:
        """The epoch of the best hold-out value when the rule stopped the run (converged); ``None`` otherwise.

        A run that reached its cap without the rule firing has not shown that it converged.
        """
        return self.best_epoch if self.stopped_epoch is not None else None

    def to_dict(self) -> dict:
        """The state, JSON-ready, with ``epochs_to_convergence``."""
        return {**asdict(self), "reductions": list(self.reductions), "epochs_to_convergence": self.epochs_to_convergence}

    @classmethod
    def from_dict(cls, data: dict) -> "PlateauRule":
        fields = {key: value for key, value in data.items() if key != "epochs_to_convergence"}
        return cls(**fields)


class PlateauCallback(keras.callbacks.Callback):
    """After every epoch: score the hold-out, record it in the epoch's history record, apply :class:`PlateauRule`.

    Parameters
    ----------
    rule : PlateauRule
    score : callable
        ``score() -> float or None``: the hold-out MAP@k of the current model.
    history : list of dict
        The run's history (the validation callback's, whose record of this epoch is the last one);
        ``holdout_map_at_{map_k}``, ``holdout_eval_seconds`` (the wall time of ``score()``) and
        ``learning_rate`` (the rate this epoch trained with) are added to it.
    map_k : int, default=100
    verbose : int, default=1
    print_function : callable, default=print
    """

    def __init__(self, *, rule: PlateauRule, score: Callable[[], float | None], history: list, map_k: int = 100,
                 verbose: int = 1, print_function: Callable[[str], None] = print):
        super().__init__()
        self.rule = rule
        self.score = score
        self.history = history
        self.key = f"holdout_map_at_{int(map_k)}"
        self.verbose = verbose
        self.print_function = print_function

    def on_train_begin(self, logs=None):
        self.model.optimizer.learning_rate = self.rule.learning_rate  # the rate a resumed run had reached

    def on_epoch_end(self, epoch, logs=None):
        start = time.perf_counter()
        value = self.score()
        seconds = time.perf_counter() - start
        record = self.history[-1] if self.history and self.history[-1].get("epoch") == epoch + 1 else None
        rate = self.rule.learning_rate
        action = self.rule.update(epoch + 1, value)
        if record is not None:
            record[self.key] = value
            record["holdout_eval_seconds"] = round(seconds, 3)
            record["learning_rate"] = rate
        if action == "reduce":
            self.model.optimizer.learning_rate = self.rule.learning_rate
        elif action == "stop":
            self.model.stop_training = True
        if self.verbose:
            shown = "—" if value is None else f"{value:.4f}"
            note = {"reduce": f"; learning rate now {self.rule.learning_rate:.3g}",
                    "stop": f"; stopping: no improvement for {self.rule.patience} epochs "
                            f"(best at epoch {self.rule.best_epoch})"}.get(action, "")
            self.print_function(f"  hold-out MAP@{self.key.rsplit('_', 1)[-1]} {shown} at learning rate {rate:.3g}{note}")
