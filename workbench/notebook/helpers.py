"""Small helpers the notebooks share: live training curves, worked-example labels, plain-text tables."""

from __future__ import annotations

import numpy as np

__all__ = ["live_history", "example_labels", "format_table"]


# ---------------------------------------------------------------------------------
# live training curves
# ---------------------------------------------------------------------------------
def live_history(*, metrics=("loss", "map_at_100"), title: str | None = None):
    """A Keras callback that redraws the training curves in the notebook after every epoch.

    It reads the records that :class:`workbench.learning.callbacks.EvaluationCallback` merges
    into each epoch's logs (``loss``, ``map_at_100``, ``macro_ap`` …) and draws one
    panel per metric with :func:`workbench.apps.plot.plot_history`, replacing the previous
    drawing (one figure in the notebook's output, updated in place).

    Returns
    -------
    keras.callbacks.Callback
        Its ``history`` attribute holds the records seen so far; ``show(history)`` draws a
        finished run's records in the same figure.
    """
    import keras

    metrics = tuple(metrics)

    class LiveHistory(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.history: list[dict] = []
            self._handle = None

        def on_epoch_end(self, epoch, logs=None):
            record = {"epoch": int(epoch) + 1, **{k: float(v) for k, v in (logs or {}).items() if np.isscalar(v)}}
            self.history.append(record)
            self._draw()

        def show(self, history):
            """Draw ``history`` (a run's records) in the same figure: the finished curves, also
            when the run was read back and no epoch was trained."""
            self.history = [dict(record) for record in history]
            if self.history:
                self._draw()

        def _draw(self):
            import matplotlib.pyplot as plt

            from workbench.apps.plot import plot_history

            figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3.2), squeeze=False)
            for ax, metric in zip(axes[0], metrics):
                plot_history(self.history, metric=metric, ax=ax)
            if title:
                figure.suptitle(title)
            figure.tight_layout()
            try:
                from IPython.display import display

                if self._handle is None:
                    self._handle = display(figure, display_id=True)
                else:
                    self._handle.update(figure)
            except ImportError:  # not in IPython: nothing to show live
                pass
            plt.close(figure)

    return LiveHistory()


# ---------------------------------------------------------------------------------
# small helpers the notebooks share
# ---------------------------------------------------------------------------------
def example_labels(counts, *, num_groups: int = 2, per_group: int = 3) -> np.ndarray:
    """A handful of labels for worked examples: frequent labels with their usual companions.

    Takes the most frequent label and the ``per_group - 1`` labels that co-occur with
    it most often. Each further group is anchored on a frequent label (at least the
    median count) of a Unicode subgroup not chosen yet that meets the labels chosen so
    far least often (more frequent first among equals), again with its companions. So
    the example shows labels that belong together (positive PMI), labels that rarely
    meet (negative PMI) and, usually, pairs that never meet (undefined PMI).

    Parameters
    ----------
    counts : CooccurrenceCounts
    num_groups, per_group : int

    Returns
    -------
    ndarray of int64
        Label positions, group by group (at most ``num_groups * per_group``).
    """
    vocabulary = counts.vocabulary
    subgroups = np.array(vocabulary.subgroups if vocabulary.subgroups is not None else [""] * len(vocabulary), dtype=object)
    pairs = counts.pair_counts.tocsr()
    label_counts = counts.label_counts
    frequent = label_counts >= max(1, np.median(label_counts[label_counts > 0])) if np.any(label_counts > 0) else label_counts > 0
    chosen: list[int] = []
    used_subgroups: set = set()
    for group in range(int(num_groups)):
        candidates = [
            i for i in range(len(vocabulary))
            if i not in chosen and frequent[i] and (not subgroups[i] or subgroups[i] not in used_subgroups)
        ]
        if not candidates:
            break
        met = np.asarray(pairs[chosen].sum(axis=0)).ravel() if chosen else np.zeros(len(vocabulary))
        anchor = min(candidates, key=lambda i: (met[i], -label_counts[i], i))
        chosen.append(int(anchor))
        used_subgroups.add(subgroups[anchor])
        row = pairs.getrow(anchor)
        for companion in row.indices[np.lexsort((row.indices, -row.data))]:
            if len(chosen) == (group + 1) * int(per_group):
                break
            if int(companion) not in chosen:
                chosen.append(int(companion))
                used_subgroups.add(subgroups[companion])
    return np.asarray(chosen, dtype=np.int64)


def format_table(rows, *, columns, digits: int = 3) -> str:
    """Rows as an aligned plain-text table (floats with ``digits`` decimals), through a pandas frame.

    Parameters
    ----------
    rows : sequence of sequences
    columns : sequence of str
        Header of each column.

    The rows become a :class:`pandas.DataFrame` and its text is
    :func:`workbench._tables.text_table`'s: text to the left, numbers to the right.
    """
    import pandas as pd

    from workbench._tables import text_table

    rows = [list(row) for row in rows]
    if any(len(row) != len(columns) for row in rows):
        raise ValueError(f"Every row needs {len(columns)} values, one per column.")
    frame = pd.DataFrame({position: pd.Series([row[position] for row in rows], dtype=object)
                          for position in range(len(columns))})
    frame.columns = [str(name) for name in columns]
    return text_table(frame, digits=digits)
