"""Result objects of the public API (:mod:`workbench.api`): each shows itself in a notebook.

Every object returned by ``wb.scenes``, ``wb.count``, ``wb.embed``, ``wb.ceiling``,
``wb.train``, ``wb.compare``, ``wb.experiment``, ``wb.calibrate`` and ``wb.classify`` has

- ``to_frame()``: its numbers as a :class:`pandas.DataFrame` (one row per label, epoch,
  head, … as the docstring says);
- ``table()``: the same as text (``DataFrame.to_string``);
- ``_repr_html_()``: a title, a one-line summary and the frame, so a notebook cell that ends
  with the object shows it;
- ``plot(ax=None)`` where a picture means something, returning the matplotlib Axes.

Objects that wrap an artefact (a data set, counts, an embedding, a trained run) pass every
other attribute through to it (``wb.embed(...).vectors`` is the embedding's), and the API's
functions accept either the wrapper or the artefact itself. Keras-free: a run wraps a
model that is already loaded.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["Result", "Dataset", "Counts", "Embedding", "Ceiling", "Run", "Comparison", "Experiment", "Calibration",
           "Classification", "unwrap"]


def unwrap(value):
    """The artefact inside a result object (anything else is returned as it is)."""
    return value.artefact if isinstance(value, _Wrapper) else value


class Result:
    """What every result object shares: a frame, its text, and its notebook picture."""

    #: Shown as the heading of the notebook view.
    title = "Result"

    def to_frame(self):
        """The numbers as a :class:`pandas.DataFrame` (see the class docstring for its rows)."""
        return self._frame()

    def summary(self) -> str:
        """One line that says what this is."""
        return ""

    def table(self) -> str:
        """:meth:`to_frame` as text."""
        frame = self.to_frame()
        return frame.to_string(index=False, float_format=lambda value: f"{value:.4g}")

    def _repr_html_(self) -> str:
        frame = self.to_frame()
        shown = frame.head(20)
        more = f"<p>… {len(frame) - 20} more rows: <code>.to_frame()</code> has them all.</p>" if len(frame) > 20 else ""
        return (f"<h4>{html.escape(self.title)}</h4><p>{html.escape(self.summary())}</p>"
                f"{shown.to_html(index=False, float_format=lambda value: f'{value:.4g}')}{more}")

    def __repr__(self) -> str:
        return f"<{self.title}: {self.summary()}>"


class _Wrapper(Result):
    """A result that holds an artefact and passes unknown attributes through to it."""

    def __init__(self, artefact):
        self.artefact = artefact

    def __getattr__(self, name):
        if name == "artefact":  # not set yet (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.artefact, name)

    def __len__(self) -> int:
        return len(self.artefact)


def _axes(ax, figsize=(6.0, 4.0)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize)
    return ax


class Dataset(_Wrapper):
    """A multi-label data set (:class:`~workbench.data.datasets.MultiLabelDataset`).

    ``to_frame()``: one row per image (``image``, ``labels`` joined by ``|``, ``num_labels``).
    ``plot()``: a grid of the first images with their labels.
    """

    title = "Data set"

    def summary(self) -> str:
        facts = self.artefact.summary()
        shown = {key: value for key, value in facts.items() if key not in ("name", "format")}
        return f"{self.artefact.name}: " + ", ".join(f"{key.replace('_', ' ')} {value}" for key, value in shown.items())

    def _frame(self):
        import pandas as pd

        sets = self.artefact.label_sets
        names = [str(self.artefact.image_paths[i]) if self.artefact.image_paths is not None else f"image {i}"
                 for i in range(len(sets))]
        return pd.DataFrame({"image": names, "labels": ["|".join(labels) for labels in sets],
                             "num_labels": [len(labels) for labels in sets]})

    def plot(self, *, num_images: int = 12, columns: int = 6, ax=None, title: str | None = None):
        """The first ``num_images`` images with their labels as captions; returns the Axes."""
        from workbench.apps.plot import plot_image_grid
        from workbench.data.images import load_image

        dataset = self.artefact
        count = min(int(num_images), len(dataset))
        if dataset.images is not None:
            images = dataset.images[:count]
        else:
            images = np.stack([load_image(dataset.path_of(i), size=64) for i in range(count)])
        captions = ["\n".join(labels) if labels else "(no label)" for labels in dataset.label_sets[:count]]
        return plot_image_grid(images, titles=captions, columns=columns, ax=ax, title=title or self.summary())


class Counts(_Wrapper):
    """Label and pair counts over the training images (:class:`~workbench.method.cooccurrence.CooccurrenceCounts`).

    ``to_frame()``: one row per label (``label``, ``images``, ``frequency`` = images / N),
    most frequent first. ``plot()``: label frequencies against rank (log–log).
    """

    title = "Co-occurrence counts"

    def summary(self) -> str:
        counts = self.artefact
        pairs = int((counts.pair_counts.nnz if hasattr(counts.pair_counts, "nnz") else np.count_nonzero(counts.pair_counts)) // 2)
        return f"{counts.num_labels} labels over {counts.n_images} training images, {pairs} label pairs seen together"

    def _frame(self):
        import pandas as pd

        counts = self.artefact
        frame = pd.DataFrame({"label": list(counts.vocabulary.names), "images": np.asarray(counts.label_counts),
                              "frequency": np.asarray(counts.label_counts) / max(counts.n_images, 1)})
        return frame.sort_values("images", ascending=False, kind="stable").reset_index(drop=True)

    def plot(self, *, ax=None, title: str | None = None):
        """Label frequencies against rank; returns the Axes."""
        from workbench.apps.plot import plot_label_frequencies

        counts = self.artefact
        return plot_label_frequencies(counts.label_counts, labels=counts.vocabulary.names, ax=ax,
                                      title=title or f"Label frequencies in {counts.n_images} training images")


class Embedding(_Wrapper):
    """A label embedding (:class:`~workbench.method.embedding.LabelEmbedding`), rows in vocabulary order.

    ``to_frame()``: one row per label (``label``, ``group``, ``count`` of training images,
    ``norm`` of its vector, ``nearest`` label by cosine and that ``similarity``).
    ``plot()``: the label map (UMAP or PCA of the vectors). ``neighbours(label)``: the
    nearest labels as a frame.
    """

    title = "Label embedding"

    def summary(self) -> str:
        embedding = self.artefact
        options = embedding.settings.get("options", {})
        choice = ", ".join(f"{key} {options[key]}" for key in ("policy", "diagonal", "negative") if key in options)
        return f"{embedding.num_labels} labels × k = {embedding.embedding_dim}" + (f" ({choice})" if choice else "")

    def _frame(self):
        import pandas as pd

        from workbench.method.embedding import unit_rows

        embedding = self.artefact
        vectors = np.asarray(embedding.vectors, dtype=np.float64)
        unit = unit_rows(vectors)
        similarity = unit @ unit.T
        np.fill_diagonal(similarity, -np.inf)
        nearest = similarity.argmax(axis=1)
        names = list(embedding.vocabulary.names)
        counts = embedding.label_counts if embedding.label_counts is not None else np.full(len(names), np.nan)
        return pd.DataFrame({
            "label": names,
            "group": [embedding.vocabulary.group_of(i) for i in range(len(names))],
            "count": np.asarray(counts),
            "norm": np.linalg.norm(vectors, axis=1),
            "nearest": [names[j] for j in nearest],
            "similarity": similarity[np.arange(len(names)), nearest] if len(names) > 1 else np.nan,
        })

    def neighbours(self, label: str, *, top: int = 10):
        """The ``top`` labels nearest to ``label`` by cosine, as a frame (``label``, ``similarity``)."""
        import pandas as pd

        return pd.DataFrame(self.artefact.nearest(label, top=top), columns=["label", "similarity"])

    def coordinates(self, *, method: str = "umap", random_state: int = 0) -> np.ndarray:
        """2-D coordinates of the labels, ``(C, 2)`` (:func:`workbench.apps.labelmap.label_coordinates`)."""
        from workbench.apps.labelmap import label_coordinates

        return label_coordinates(self.artefact.vectors, method=method, random_state=random_state)

    def plot(self, *, label: str | None = None, method: str = "umap", random_state: int = 0, top: int = 8, ax=None,
             title: str | None = None):
        """The label map: every label at its 2-D position, coloured by group; ``label`` and its neighbours named."""
        from workbench.apps.plot import plot_label_map

        embedding = self.artefact
        names = list(embedding.vocabulary.names)
        chosen = highlight = None
        if label is not None:
            chosen = embedding.vocabulary.index(label)
            highlight = embedding.vocabulary.indices([name for name, _ in embedding.nearest(label, top=top)])
        groups = [embedding.vocabulary.group_of(i) for i in range(len(names))]
        return plot_label_map(self.coordinates(method=method, random_state=random_state), labels=names, groups=groups,
                              chosen=chosen, highlight=highlight, ax=ax,
                              title=title or f"Label map ({method.upper()}) of {self.summary()}")

    def plot_spectrum(self, *, ax=None, title: str | None = None):
        """The eigenvalues the embedding kept, with k marked; returns the Axes."""
        from workbench.apps.plot import plot_spectrum

        return plot_spectrum(self.artefact.eigenvalues, k=self.artefact.embedding_dim, ax=ax,
                             title=title or "Spectrum of the PMI matrix")


class Ceiling(Result):
    """The decoding ceiling: ideal targets decoded, against k (:func:`workbench.evaluation.ceiling.decoding_ceiling`).

    ``to_frame()``: one row per embedding and k (``embedding``, ``dim``, ``dim_achieved``,
    ``map_at_100``, ``macro_ap``). ``plot()``: MAP@100 against k.
    """

    title = "Decoding ceiling"

    def __init__(self, report: dict):
        self.report = report

    def summary(self) -> str:
        kinds = sorted({row["embedding"] for row in self.report["rows"]})
        dims = sorted({row["dim"] for row in self.report["rows"]})
        return f"{', '.join(kinds)} at k = {', '.join(map(str, dims))}: the best MAP@100 a head can reach"

    def _frame(self):
        import pandas as pd

        return pd.DataFrame(self.report["rows"])

    def plot(self, *, ax=None, title: str | None = None):
        from workbench.apps.plot import plot_ceiling

        return plot_ceiling(self.report, ax=ax, title=title)


class Run(_Wrapper):
    """One trained head (:class:`~workbench.learning.runs.TrainedRun`).

    ``to_frame()``: its history, one row per epoch (``epoch``, ``loss``, ``map_at_100``,
    ``macro_ap``, …). ``plot(metric)``: that metric against epochs. ``save(path)`` keeps a
    run trained without ``out_dir``; ``classify(images)`` ranks labels.
    """

    title = "Trained run"

    def summary(self) -> str:
        from workbench.evaluation.statistics import final_value

        run = self.artefact
        value = final_value(run.history)
        final = "" if value is None else f", final MAP@100 {value:.3f} (mean of the last 3 epochs)"
        return f"{run.head} head, {len(run.history)} epoch(s){final}; in {run.run_dir}"

    def _frame(self):
        import pandas as pd

        return pd.DataFrame(self.artefact.history)

    def plot(self, *, metric: str = "map_at_100", ax=None, title: str | None = None):
        from workbench.apps.plot import plot_history

        return plot_history(self.artefact.history, metric=metric, ax=ax, label=self.artefact.head, title=title)

    def save(self, path) -> "Run":
        """Copy the run folder to ``path`` (new or empty) and return the run kept there."""
        return Run(self.artefact.save(path))

    def classify(self, images, *, top: int | None = 5, threshold: float | None = None, decoder: str = "cosine"):
        """:func:`workbench.api.classify` with this run."""
        from workbench.api import classify

        return classify(self, images, top=top, threshold=threshold, decoder=decoder)


class Comparison(Result):
    """Every head trained with every seed against one embedding (``results.json`` of :func:`~workbench.experiments.compare.compare`).

    ``to_frame()``: one row per head (final MAP@100 over seeds, epochs to reach the sigmoid
    head). ``plot(x="epoch" | "seconds")``: MAP@100 curves. ``statistics()``: each run's
    interval and the paired pmi-versus-random test.
    """

    title = "Comparison of heads"

    def __init__(self, results: dict, folder):
        self.results = results
        self.folder = Path(folder)

    def summary(self) -> str:
        config = self.results["config"]
        return (f"heads {', '.join(config['heads'])} × seeds {config['seeds']}, {config['epochs']} epoch(s), "
                f"{config['num_train']} training and {config['num_validation']} validation images; in {self.folder}")

    def _frame(self):
        from workbench.experiments.results import comparison_frame

        return comparison_frame(self.results)

    def plot(self, *, metric: str = "map_at_100", x: str = "epoch", ax=None):
        from workbench.apps.plot import plot_map_curves

        return plot_map_curves(self.results, metric=metric, x=x, ax=ax)

    def statistics(self, *, first: str = "pmi", second: str = "random") -> "Statistics":
        """Each run's final value with its interval over images, and the paired test of ``first`` against ``second``."""
        from workbench.experiments.results import comparison_statistics

        return Statistics(comparison_statistics(self.folder, first=first, second=second))


class Statistics(Result):
    """The honest statistics of a comparison: one row per run, and the paired test (``paired``)."""

    title = "Runs with intervals"

    def __init__(self, statistics: dict):
        self.statistics = statistics
        self.paired = statistics.get("paired")

    def summary(self) -> str:
        from workbench.experiments.results import statistics_table

        return statistics_table(self.statistics).splitlines()[-1] if self.paired else "no paired test (no common seeds)"

    def _frame(self):
        from workbench.experiments.results import statistics_frame

        return statistics_frame(self.statistics)


class Experiment(Result):
    """A grid of comparisons (``workbench experiment``): ``results.json`` of its cells.

    ``to_frame()``: one row per cell and head (MAP@100 over seeds, intervals, ceiling).
    ``rows()``: every (cell, head, seed) as in ``results.csv``. ``plot()``: MAP@100 against k.
    """

    title = "Experiment"

    def __init__(self, results: dict, folder):
        self.results = results
        self.folder = Path(folder)

    def summary(self) -> str:
        cells = {row["cell"] for row in self.results["rows"]}
        return f"{len(cells)} cell(s), {len(self.results['rows'])} run(s); in {self.folder}"

    def _frame(self):
        from workbench.experiments.results import results_frame

        return results_frame(self.results)

    def rows(self):
        """Every finished run as one row (the columns of ``results.csv``)."""
        import pandas as pd

        return pd.DataFrame(self.results["rows"])

    def plot(self, *, num_labels: int | None = None, metric: str = "map_at_100", ax=None):
        from workbench.apps.plot import plot_experiment

        return plot_experiment(self.results, num_labels=num_labels, metric=metric, ax=ax)


class Calibration(Result):
    """A run's operating points, fitted on part of its validation split and measured on the rest.

    ``to_frame()``: one row per decoder and operating point. ``best``: the decoder and point
    with the highest calibration micro F1.
    """

    title = "Calibration"

    def __init__(self, report: dict):
        self.report = report
        self.best = report["best"]

    def summary(self) -> str:
        return (f"fitted on {len(self.report['calibration_images'])} validation images, measured on "
                f"{len(self.report['test_images'])} others; best: {self.best['decoder']} at "
                f"{self.best['operating_point']}")

    def _frame(self):
        from workbench.evaluation.calibration import calibration_frame

        return calibration_frame(self.report)


class Classification(Result):
    """Ranked labels of a batch of images (:class:`~workbench.apps.classify.ClassificationResult` each).

    ``labels``: per image, the label names best first; ``scores``: their scores.
    ``to_frame()``: one row per (image, rank) with ``label`` and ``score``; an image that could
    not be read has one row with its ``error``.
    """

    title = "Classification"

    def __init__(self, results):
        self.results = list(results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, position):
        return self.results[position]

    def __iter__(self):
        return iter(self.results)

    @property
    def labels(self) -> list[list[str]]:
        return [[name for name, _ in result.labels] for result in self.results]

    @property
    def scores(self) -> list[list[float]]:
        return [[float(score) for _, score in result.labels] for result in self.results]

    def summary(self) -> str:
        failed = sum(not result.ok for result in self.results)
        return f"{len(self.results)} image(s)" + (f", {failed} not classified" if failed else "")

    def _frame(self):
        import pandas as pd

        rows = []
        for result in self.results:
            if not result.ok:
                rows.append({"image": result.image, "rank": None, "label": None, "score": None, "error": result.error})
            for rank, (name, score) in enumerate(result.labels, start=1):
                rows.append({"image": result.image, "rank": rank, "label": name, "score": float(score), "error": None})
        frame = pd.DataFrame(rows, columns=["image", "rank", "label", "score", "error"])
        return frame if frame["error"].notna().any() else frame.drop(columns="error")
