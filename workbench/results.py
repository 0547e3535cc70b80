"""Result objects of the public API (:mod:`workbench.api`): each shows itself in a notebook.

Every object returned by ``wb.scenes``, ``wb.count``, ``wb.pmi``, ``wb.embed``, ``wb.ceiling``,
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

Why one module of about 960 lines: each class is a thin view of one artefact (a frame, a
summary, plots drawn by :mod:`workbench.apps.plot`) and they share the wrapper, the notebook
view and the label helpers; kept together in the order of the method, they read as the
reference of what ``wb``'s calls return.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np

__all__ = ["Result", "Dataset", "Counts", "Pmi", "Spectrum", "Embedding", "Ceiling", "Run", "Comparison", "Experiment",
           "Calibration", "Classification", "unwrap"]


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

    def __init__(self, artefact, *, card: dict | None = None):
        super().__init__(artefact)
        #: The data card (:func:`workbench.data.card.dataset_card`) of generated scenes; ``None`` otherwise.
        self.card = card

    def card_text(self) -> str:
        """The data card as Markdown: training images per label and look-alike glyphs."""
        from workbench.data.card import card_markdown

        if self.card is None:
            raise ValueError("This data set has no card: generate it with wb.scenes, or write one with workbench scenes.")
        return card_markdown(self.card)

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

    def paths(self) -> list[Path]:
        """Every image's file, resolved against the data set's folder (to classify them as uploads are)."""
        return [self.artefact.path_of(i) for i in range(len(self.artefact))]

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


def _positions(vocabulary, labels) -> np.ndarray:
    """Positions of ``labels`` (names, or positions) in ``vocabulary``; every label when None."""
    if labels is None:
        return np.arange(len(vocabulary))
    labels = list(labels)
    if all(isinstance(label, (int, np.integer)) and not isinstance(label, bool) for label in labels):
        return np.asarray(labels, dtype=np.int64)
    return np.asarray([vocabulary.index(str(label)) for label in labels], dtype=np.int64)


def _labelled(values, names):
    """A square array as a DataFrame with the label names on both axes."""
    import pandas as pd

    return pd.DataFrame(values, index=pd.Index(names, name="label"), columns=list(names))


class Counts(_Wrapper):
    """Label and pair counts over the training images (:class:`~workbench.method.cooccurrence.CooccurrenceCounts`).

    ``to_frame()``: one row per label (``label``, ``group``, ``subgroup``, ``images``,
    ``frequency`` = images / N), most frequent first. ``plot()``: label frequencies against
    rank (log–log). ``submatrix(labels)``: the pair counts ``c_ij`` of some labels, named;
    ``example_labels()``: a handful of labels for worked examples.
    """

    title = "Co-occurrence counts"

    def summary(self) -> str:
        counts = self.artefact
        pairs = int((counts.pair_counts.nnz if hasattr(counts.pair_counts, "nnz") else np.count_nonzero(counts.pair_counts)) // 2)
        return f"{counts.num_labels} labels over {counts.n_images} training images, {pairs} label pairs seen together"

    def _frame(self):
        import pandas as pd

        counts = self.artefact
        vocabulary = counts.vocabulary
        frame = pd.DataFrame({"label": list(vocabulary.names),
                              "group": [vocabulary.group_of(i) for i in range(len(vocabulary))],
                              "subgroup": [vocabulary.subgroup_of(i) for i in range(len(vocabulary))],
                              "images": np.asarray(counts.label_counts),
                              "frequency": np.asarray(counts.label_counts) / max(counts.n_images, 1)})
        return frame.sort_values("images", ascending=False, kind="stable").reset_index(drop=True)

    def submatrix(self, labels=None):
        """The pair counts ``c_ij`` of ``labels`` (names or positions; default all) as a frame named on both axes.

        The diagonal is 0, as in the counts (it would repeat ``c_i``).
        """
        counts = self.artefact
        positions = _positions(counts.vocabulary, labels)
        values = counts.pair_counts.tocsr()[positions][:, positions].toarray()
        return _labelled(values, [counts.vocabulary[int(i)] for i in positions])

    def example_labels(self, *, num_groups: int = 2, per_group: int = 3) -> list[str]:
        """A handful of label names for worked examples: frequent labels, each with its usual companions.

        Group by group (:func:`workbench.notebook.helpers.example_labels`): each group is a
        frequent anchor of a new subgroup that meets the labels chosen so far least often,
        then the labels it meets most; so the handful holds pairs that belong together,
        pairs that rarely meet and, usually, pairs that never do.
        """
        from workbench.notebook.helpers import example_labels

        chosen = example_labels(self.artefact, num_groups=num_groups, per_group=per_group)
        return [self.artefact.vocabulary[int(i)] for i in chosen]

    def plot(self, *, ax=None, title: str | None = None):
        """Label frequencies against rank; returns the Axes."""
        from workbench.apps.plot import plot_label_frequencies

        counts = self.artefact
        return plot_label_frequencies(counts.label_counts, labels=counts.vocabulary.names, ax=ax,
                                      title=title or f"Label frequencies in {counts.n_images} training images")

    def plot_pairs(self, labels, *, ax=None, title: str | None = None):
        """The pair counts ``c_ij`` of a few ``labels`` as a heatmap with the counts written in; returns the Axes."""
        from workbench.apps.plot import plot_count_matrix

        pairs = self.submatrix(labels)
        return plot_count_matrix(pairs.to_numpy(), labels=list(pairs.index), ax=ax,
                                 title=title or "Images with both labels, c_ij")


class Pmi(_Wrapper):
    """A PMI matrix over the labels that occur (:class:`~workbench.method.pmi.PMIResult`), with the counts it came from.

    ``to_frame(min_count=1)``: one row per pair of labels seen together in at least
    ``min_count`` images (``label_i``, ``label_j``, ``c_ij``, ``c_i``, ``c_j``, ``pmi``),
    largest PMI first; ``min_count=0`` lists every pair (``C (C − 1) / 2`` rows).
    ``submatrix(labels)``: the PMI of some labels, named on both axes. ``statistics()``:
    storage and the range of the values. ``plot()``: the (clustered) heatmap.
    ``spectrum()``: every eigenvalue (:class:`Spectrum`).
    """

    title = "PMI matrix"

    def __init__(self, artefact, counts):
        super().__init__(artefact)
        self.counts = unwrap(counts)

    def summary(self) -> str:
        facts = self.statistics()
        return (f"{self.artefact.num_labels} labels, policy {facts['policy']!r}, diagonal {facts['diagonal']!r}: "
                f"{facts['storage']} with {facts['stored']} stored entries; off the diagonal from {facts['min']:.2f} "
                f"to {facts['max']:.2f}")

    def to_frame(self, *, min_count: int = 1):
        """Pairs of distinct labels seen together in at least ``min_count`` images, largest PMI first."""
        import pandas as pd
        import scipy.sparse as sp

        pmi = self.artefact
        pairs = self.counts.pair_counts.tocsr()[pmi.kept][:, pmi.kept]
        if min_count <= 0:
            first, second = np.triu_indices(pmi.num_labels, k=1)
            together = np.asarray(pairs[first, second]).ravel()
        else:
            upper = sp.triu(pairs, k=1).tocoo()
            keep = upper.data >= min_count
            first, second, together = upper.row[keep], upper.col[keep], upper.data[keep]
        values = pmi.matrix[first, second]
        names = np.asarray(pmi.vocabulary.names, dtype=object)
        frame = pd.DataFrame({"label_i": names[first], "label_j": names[second], "c_ij": np.asarray(together, dtype=np.int64),
                              "c_i": pmi.label_counts[first], "c_j": pmi.label_counts[second],
                              "pmi": np.asarray(values, dtype=np.float64).ravel()})
        return frame.sort_values("pmi", ascending=False, kind="stable").reset_index(drop=True)

    def submatrix(self, labels=None):
        """The PMI of ``labels`` (names, or positions among the kept labels; default all) as a frame named on both axes."""
        pmi = self.artefact
        positions = _positions(pmi.vocabulary, labels)
        matrix = pmi.matrix[positions][:, positions]
        values = matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)
        return _labelled(values, [pmi.vocabulary[int(i)] for i in positions])

    def statistics(self) -> dict:
        """``policy``, ``diagonal``, ``storage`` (sparse or dense), ``stored`` entries, and the off-diagonal
        ``min``, ``max``, share ``negative`` and share ``zero``, with the ``mean_diagonal``."""
        pmi = self.artefact
        values = pmi.toarray()
        off = values[~np.eye(pmi.num_labels, dtype=bool)]
        return {"policy": pmi.settings.get("policy"), "diagonal": pmi.settings.get("diagonal"),
                "storage": "sparse" if pmi.is_sparse else "dense",
                "stored": int(pmi.matrix.nnz) if pmi.is_sparse else int(values.size),
                "min": float(off.min()) if off.size else 0.0, "max": float(off.max()) if off.size else 0.0,
                "negative": float(np.mean(off < 0)) if off.size else 0.0,
                "zero": float(np.mean(off == 0)) if off.size else 0.0,
                "mean_diagonal": float(np.diag(values).mean())}

    def plot(self, *, labels=None, cluster: bool = True, ax=None, title: str | None = None):
        """The PMI heatmap of ``labels`` (default all; named when they are few), rows in clustered order or as given."""
        from workbench.apps.plot import plot_pmi_heatmap

        shown = self.submatrix(labels)
        return plot_pmi_heatmap(shown.to_numpy(), labels=list(shown.index), order="cluster" if cluster else None,
                                max_tick_labels=max(60, len(shown)) if labels is not None else 60, ax=ax, title=title)

    def spectrum(self) -> "Spectrum":
        """Every eigenvalue of the matrix, largest first (dense, ``O(C³)``)."""
        from workbench.method.embed import pmi_frobenius_norm, spectrum

        return Spectrum(spectrum(self.artefact), norm_squared=pmi_frobenius_norm(self.artefact) ** 2)

    def reconstruction_error(self, embedding) -> float:
        """``‖E Eᵀ − PMI‖ / ‖PMI‖`` of an embedding of these labels (Frobenius norms)."""
        from workbench.method.embed import reconstruction_error

        return reconstruction_error(unwrap(embedding).vectors, self.artefact)


class Spectrum(Result):
    """Every eigenvalue of a PMI matrix, sorted by signed value, largest first (:func:`workbench.method.embed.spectrum`).

    ``to_frame()``: one row per eigenvalue (``rank``, ``eigenvalue``, and for the positive
    ones ``energy_kept`` = Σ λ² of the positive ones up to this rank / ‖PMI‖², the share an
    embedding with ``k`` = rank keeps, and ``reconstruction_error`` = √(1 − energy_kept)).
    ``plot(k=…)``: the bars; ``plot_energy(k=…)``: energy and error against ``k``.
    """

    title = "Spectrum"

    def __init__(self, eigenvalues, *, norm_squared: float | None = None):
        self.eigenvalues = np.asarray(eigenvalues, dtype=np.float64)
        #: ``‖PMI‖_F²``: the sum of every squared eigenvalue unless given.
        self.norm_squared = float(np.sum(np.square(self.eigenvalues))) if norm_squared is None else float(norm_squared)

    def __len__(self) -> int:
        return len(self.eigenvalues)

    def statistics(self) -> dict:
        """How many eigenvalues are ``positive`` and ``negative``, the ``largest`` and the ``most_negative``."""
        values = self.eigenvalues
        return {"positive": int(np.sum(values > 0)), "negative": int(np.sum(values < 0)),
                "largest": float(values.max()), "most_negative": float(values.min())}

    def summary(self) -> str:
        facts = self.statistics()
        return (f"{facts['positive']} positive and {facts['negative']} negative eigenvalues; largest "
                f"{facts['largest']:.2f}, most negative {facts['most_negative']:.2f}")

    def energy(self) -> np.ndarray:
        """Energy kept by the ``k`` largest positive eigenvalues, for ``k`` = 1 … number of positive ones."""
        positive = self.eigenvalues[self.eigenvalues > 0]
        return np.cumsum(np.square(positive)) / self.norm_squared if self.norm_squared > 0 else np.zeros(len(positive))

    def _frame(self):
        import pandas as pd

        energy = np.full(len(self), np.nan)
        positive = np.flatnonzero(self.eigenvalues > 0)
        energy[positive] = self.energy()
        return pd.DataFrame({"rank": np.arange(1, len(self) + 1), "eigenvalue": self.eigenvalues, "energy_kept": energy,
                             "reconstruction_error": np.sqrt(np.clip(1.0 - energy, 0.0, None))})

    def plot(self, *, k: int | None = None, top: int | None = None, ax=None, title: str | None = None):
        """The eigenvalues as bars (the ``top`` largest, default all), the ``k`` an embedding keeps marked."""
        from workbench.apps.plot import plot_spectrum

        shown = self.eigenvalues if top is None else self.eigenvalues[:top]
        return plot_spectrum(shown, k=k, ax=ax,
                             title=title or f"{'The' if top is None else 'The largest'} {len(shown)} eigenvalues")

    def plot_energy(self, *, k: int | None = None, ax=None, title: str | None = None):
        """Energy kept and reconstruction error against ``k`` (over the positive eigenvalues), ``k`` marked."""
        from workbench.apps.plot import plot_energy_curve

        energy = self.energy()
        return plot_energy_curve(np.arange(1, len(energy) + 1), energy, error=np.sqrt(np.clip(1.0 - energy, 0.0, None)),
                                 chosen=k, ax=ax, title=title)


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

    def neighbours(self, label, *, top: int = 10):
        """The ``top`` labels nearest to ``label`` by cosine, as a frame (``label``, ``similarity``), best first.

        ``label`` may be a list of labels: then one frame for all of them, with the label asked
        about first (``query``, ``label``, ``similarity``; ``top`` rows per query, in the order given).
        """
        import pandas as pd

        if isinstance(label, str):
            return pd.DataFrame(self.artefact.nearest(label, top=top), columns=["label", "similarity"])
        rows = [(query, name, similarity) for query in label for name, similarity in self.artefact.nearest(query, top=top)]
        return pd.DataFrame(rows, columns=["query", "label", "similarity"])

    def coordinates(self, *, method: str = "umap", random_state: int = 0, deterministic: bool = False) -> np.ndarray:
        """2-D coordinates of the labels, ``(C, 2)`` (:func:`workbench.apps.labelmap.label_coordinates`).

        Computed once per setting (a UMAP layout is also kept on disk, in
        :func:`~workbench.apps.labelmap.default_cache_dir`): the map, the explorer
        (``wb.explore``) and an export of this object share them. ``deterministic``: a
        seeded one-core UMAP, the same coordinates on every run (slower).
        """
        from workbench.apps.labelmap import label_coordinates

        cache = self.__dict__.setdefault("_coordinates", {})
        key = (method, random_state, bool(deterministic))
        if key not in cache:
            cache[key] = label_coordinates(self.artefact.vectors, method=method, random_state=random_state,
                                           deterministic=deterministic, cache=True)
        return cache[key].copy()

    def plot(self, *, label: str | None = None, method: str = "umap", random_state: int = 0, top: int = 8,
             groups=None, legend_title: str = "group", ax=None, title: str | None = None):
        """The label map: every label at its 2-D position, coloured by group; ``label`` and its ``top`` neighbours named.

        ``groups``: what colours the points, a mapping label name → group (for example the scene
        theme of each label); default the vocabulary's groups.
        """
        from workbench.apps.plot import plot_label_map

        embedding = self.artefact
        names = list(embedding.vocabulary.names)
        chosen = highlight = None
        if label is not None:
            chosen = embedding.vocabulary.index(label)
            highlight = embedding.vocabulary.indices([name for name, _ in embedding.nearest(label, top=top)])
        if groups is None:
            groups = [embedding.vocabulary.group_of(i) for i in range(len(names))]
        else:
            groups = [groups.get(name, "other") for name in names]
        return plot_label_map(self.coordinates(method=method, random_state=random_state), labels=names, groups=groups,
                              chosen=chosen, highlight=highlight, legend_title=legend_title, ax=ax,
                              title=title or f"Label map ({method.upper()}) of {self.summary()}")

    def target(self, labels) -> np.ndarray:
        """The training target of an image with ``labels`` (names): the sum of their vectors, ``(k,)`` float32."""
        embedding = self.artefact
        return np.asarray(embedding.vectors[embedding.vocabulary.indices(list(labels))].sum(axis=0), dtype=np.float32)

    def plot_nearest(self, point, *, top: int = 8, marked=(), ax=None, title: str | None = None):
        """The ``top`` labels nearest to ``point`` (a ``(k,)`` vector) by cosine as bars, ``marked`` labels ticked ✓."""
        from workbench.apps.plot import plot_similarity_bars

        embedding = self.artefact
        similarity = embedding.similarities(np.asarray(point))[0]
        ranked = np.argsort(-similarity)[:top]
        return plot_similarity_bars(_ticked([embedding.vocabulary[int(i)] for i in ranked], marked), similarity[ranked],
                                    ax=ax, title=title or "labels nearest to the point (✓ = marked)")

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

    def baselines(self, data, *, draws: int = 20, random_state: int = 0):
        """What the run's MAP@100 is worth, on its own validation split of ``data``: one row per ranking.

        ``chance``: labels ranked at random (the mean of ``draws`` rankings); ``label
        frequency``: every image's labels ranked by their count in the training split (one
        list for all images); then the run's own scores. Columns ``ranking``, ``map_at_100``.
        """
        import pandas as pd

        from workbench.evaluation.metrics import mean_average_precision

        run = self.artefact
        train_set, validation = run.splits(unwrap(data))
        truth = validation.labels
        rng = np.random.default_rng(random_state)
        chance = np.mean([mean_average_precision(rng.random(truth.shape), truth) for _ in range(int(draws))])
        frequency = np.asarray(train_set.labels.sum(axis=0), dtype=np.float64).ravel()
        values = [chance, mean_average_precision(np.tile(frequency, (truth.shape[0], 1)), truth),
                  mean_average_precision(run.label_scores(run.images_of(validation)), truth)]
        names = ["chance (random ranking)", "label frequency", f"{run.head} head (this run)"]
        return pd.DataFrame({"ranking": names, "map_at_100": np.asarray(values, dtype=np.float64)})

    def image_ap(self):
        """Every validation image's AP@100 after each epoch, ``(epochs, images)``, NaN for an image without labels;
        None for a run trained before they were kept."""
        from workbench.evaluation.statistics import read_image_ap

        return read_image_ap(self.artefact.run_dir)

    def sweep(self, data, *, decoder: str = "cosine", num_thresholds: int = 101):
        """Micro ``precision``, ``recall`` and ``f1`` of "every score at or above ``threshold`` is a label" on the
        images of ``data``, one row per threshold (evenly spaced over the scores' range)."""
        import pandas as pd

        from workbench.evaluation.calibration import threshold_sweep

        run, dataset = self.artefact, unwrap(data)
        sweep = threshold_sweep(run.label_scores(run.images_of(dataset), decoder=decoder), dataset.labels,
                                num_thresholds=num_thresholds)
        return pd.DataFrame({"threshold": sweep["thresholds"], **{key: sweep[key] for key in ("precision", "recall", "f1")}})

    def store(self, path=None):
        """The SQLite result store (:class:`~workbench.apps.store.ResultStore`) at ``path``, by default the run's own
        ``RUN_DIR/results.sqlite``, which the upload app's **Store results** button fills."""
        from workbench.apps.store import ResultStore, default_store_path

        return ResultStore(path if path is not None else default_store_path(self.artefact.run_dir))


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

    def plot(self, *, metric: str = "map_at_100", x: str = "epoch", references: dict | None = None, ax=None):
        """``metric`` of each head against ``x`` (``"epoch"`` or ``"seconds"``), mean over seeds with their spread;
        ``references``: name → value, drawn as horizontal lines (baselines such as chance)."""
        from workbench.apps.plot import plot_comparison_curves

        ax = plot_comparison_curves(self.results, metric=metric, x=x, ax=ax)
        for (name, value), style in zip((references or {}).items(), ("--", ":", "-.", (0, (1, 3)))):
            ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=name)
        if references:
            ax.legend(fontsize="small")
        return ax

    def history(self):
        """Every run's record after every epoch, one row per (``head``, ``seed``, ``epoch``) with its metrics."""
        import pandas as pd

        return pd.DataFrame([{"head": run["head"], "seed": run["seed"], **record}
                             for run in self.results["runs"] for record in run["history"]])

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
    ``rows()``: every (cell, head, seed) as in ``results.csv``. ``comparisons()``: every
    (setting, head, baseline) as in ``comparisons.csv``. ``plot()``: MAP@100 against k.
    ``cells(dim=…)``: the cells with some settings; per cell, ``per_label(cell)`` (each head's
    AP by label), ``mistakes(cell)`` (the most confident false positives) and
    ``companion_shares(cell)``.
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

    def comparisons(self):
        """Every comparison of the grid as in ``comparisons.csv``: difference, interval, p-value, Holm-adjusted p, verdict.

        See :func:`workbench.experiments.comparisons.comparisons_frame`; the pooled tests over
        ``k`` are ``results["pooled"]``.
        """
        from workbench.experiments.comparisons import comparisons_frame

        return comparisons_frame(self.results)

    def claims(self) -> list[str]:
        """What the comparisons say, one sentence per (label count, head, baseline, verdict), then the pooled tests.

        "pmi shows no difference from random at 40 labels for k = 4, 16 (Holm-adjusted p = 1.000)."
        (:func:`workbench.experiments.study.claims`): "better" or "worse" only where the
        Holm-adjusted p-value is below 0.05; the same sentences ``docs/study.md`` is written with.
        """
        from workbench.experiments.study import claims, pooled_claims

        return [claim["text"] for claim in claims(self.comparisons()) + pooled_claims(self.results)]

    def cells(self, **settings) -> list[str]:
        """Names of the cells (in the order run) with a finished run whose row has these values.

        ``experiment.cells(dim=16)``: the cells whose embeddings have ``k`` = 16; the keys are
        columns of :meth:`rows` (``head``, ``dim``, ``pmi``, ``num_labels``, …).
        """
        from workbench.experiments.results import RESULT_COLUMNS

        unknown = sorted(set(settings) - set(RESULT_COLUMNS))
        if unknown:
            raise ValueError(f"Unknown setting(s) {', '.join(unknown)}; use columns of rows(): {', '.join(RESULT_COLUMNS)}.")
        rows = self.results["rows"]
        return list(dict.fromkeys(row["cell"] for row in rows if all(row.get(key) == value for key, value in settings.items())))

    def _analyses(self, cell: str) -> dict:
        """``{head: per-label entry}`` of ``cell`` (``results.json``'s ``per_label``); ValueError when there is none."""
        entries = {entry["head"]: entry for entry in self.results.get("per_label", []) if entry["cell"] == cell}
        if not entries:
            analysed = sorted({entry["cell"] for entry in self.results.get("per_label", [])})
            raise ValueError(f"No per-label analysis of cell {cell!r}; analysed cells: {', '.join(analysed) or 'none'}.")
        return entries

    def per_label(self, cell: str):
        """Every label of ``cell`` with its counts and each head's AP, one row per label (vocabulary order).

        Columns: ``label``, ``train_count`` and ``validation_count`` (images of the cell's
        split), then one column per head: the label's AP on the validation split, mean over
        seeds (NaN for a label absent from the validation images).
        """
        import pandas as pd

        entries = self._analyses(cell)
        first = next(iter(entries.values()))
        frame = pd.DataFrame({"label": first["labels"], "train_count": first["train_counts"],
                              "validation_count": first["validation_counts"]})
        for head, entry in entries.items():
            frame[head] = [np.nan if value is None else float(value) for value in entry["per_label_ap"]]
        return frame

    def mistakes(self, cell: str, *, head: str = "pmi"):
        """The most confident false positives of ``head`` in ``cell`` (its first seed), most confident first.

        Columns: ``image`` (position in the cell's validation split, ``split_random_state`` 0),
        ``path``, ``true`` (the image's labels), ``wrong`` (the wrong label scored highest),
        ``score`` and ``companion_of`` (the true label of which ``wrong`` is a high-PMI
        companion, or None).
        """
        import pandas as pd

        entries = self._analyses(cell)
        if head not in entries:
            raise ValueError(f"Cell {cell!r} has no analysis of head {head!r}; it has {', '.join(entries)}.")
        errors = entries[head]["errors"]
        frame = pd.DataFrame(errors, columns=["image", "path", "true", "wrong", "score", "companion_of"])
        for column in ("path", "companion_of"):  # None stays None (pandas would make it NaN, which is true in an if)
            frame[column] = pd.Series([error.get(column) for error in errors], index=frame.index, dtype=object)
        return frame

    def companion_shares(self, cell: str):
        """How many mistakes in ``cell`` are high-PMI companions of a true label, one row per head (the index).

        Columns (means over seeds): ``most_confident`` (share among the most confident false
        positives), ``every_image`` (among every image's top wrong label) and ``chance`` (the
        share of an image's wrong labels that are companions: a head blind to co-occurrence).
        """
        import pandas as pd

        entries = self._analyses(cell)
        return pd.DataFrame({"most_confident": [entry["companion_share_top"] for entry in entries.values()],
                             "every_image": [entry["companion_share_all"] for entry in entries.values()],
                             "chance": [entry["companion_share_chance"] for entry in entries.values()]},
                            index=pd.Index(list(entries), name="head"))

    def plot(self, *, num_labels: int | None = None, metric: str = "map_at_100", ax=None, title: str | None = None):
        from workbench.apps.plot import plot_experiment

        return plot_experiment(self.results, num_labels=num_labels, metric=metric, ax=ax, title=title)


class Calibration(Result):
    """A run's operating points, fitted on part of its validation split and measured on the rest.

    ``to_frame()``: one row per decoder and operating point. ``best``: the decoder and point
    with the highest calibration micro F1.
    """

    title = "Calibration"

    def __init__(self, report: dict, *, run=None, dataset=None):
        self.report = report
        self.best = report["best"]
        self._run, self._dataset = run, dataset  # to score the test images again for plot()

    def summary(self) -> str:
        return (f"fitted on {len(self.report['calibration_images'])} validation images, measured on "
                f"{len(self.report['test_images'])} others; best: {self.best['decoder']} at "
                f"{self.best['operating_point']}")

    def _frame(self):
        from workbench.evaluation.calibration import calibration_frame

        return calibration_frame(self.report)

    def by_num_labels(self, *, operating_point: str = "threshold_micro_f1", metric: str = "micro_f1"):
        """``metric`` on the test images at each decoder's ``operating_point``, by the number of true labels of the
        image: one row per decoder, one column per count (``"1 label(s)"`` … ``"4+ label(s)"``); NaN where undefined."""
        import pandas as pd

        rows = {decoder: {count: np.nan if values.get(metric) is None else float(values[metric])
                          for count, values in entry["test"][operating_point]["by_num_labels"].items()}
                for decoder, entry in self.report["decoders"].items()}
        frame = pd.DataFrame.from_dict(rows, orient="index").rename_axis("decoder")
        frame = frame[sorted(frame.columns, key=lambda count: int(str(count).rstrip("+")))]
        return frame.rename(columns=lambda count: f"{count} label(s)")

    def plot(self, *, decoder: str | None = None, ax=None, title: str | None = None):
        """Micro precision, recall and F1 against the threshold on the test images, for ``decoder`` (default the
        best), its calibrated threshold marked. Needs the run and data set (``wb.calibrate`` keeps them)."""
        from workbench.apps.plot import plot_threshold_sweep
        from workbench.evaluation.calibration import threshold_sweep

        if self._run is None:
            raise ValueError("This calibration has no run to score its test images; make it with wb.calibrate(run, data).")
        run, decoder = self._run, decoder or self.best["decoder"]
        _, validation = run.splits(self._dataset)
        position = {path: i for i, path in enumerate(validation.image_paths)}
        if len(position) != len(validation):
            raise ValueError("The test images are named by their files; this data set has none (write it to a folder).")
        test = validation.subset([position[path] for path in self.report["test_images"]])
        sweep = threshold_sweep(run.label_scores(run.images_of(test), decoder=decoder), test.labels)
        return plot_threshold_sweep(sweep, chosen=self.report["decoders"][decoder]["fitted"]["threshold_micro_f1"], ax=ax,
                                    title=title or f"{decoder} decoder on the test half of validation")


def _ticked(names, marked) -> list[str]:
    """Label names, those in ``marked`` followed by " ✓"."""
    marked = set(marked)
    return [f"{name} ✓" if name in marked else str(name) for name in names]


def _label_sets(truth) -> list[set]:
    """Each image's true label names: a data set's ``label_sets``, or given."""
    return [set(labels) for labels in getattr(truth, "label_sets", truth)]


class Classification(Result):
    """Ranked labels of a batch of images (:class:`~workbench.apps.classify.ClassificationResult` each).

    ``labels``: per image, the label names best first; ``scores``: their scores.
    ``to_frame()``: one row per (image, rank) with ``label`` and ``score``; an image that could
    not be read has one row with its ``error``. Against the true labels (a data set, or each
    image's label names): ``hits(truth)`` per image with chance, ``mistakes(truth)``;
    ``plot()`` the images captioned, ``plot_bars()`` their ranked labels as bars.
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

    def hits(self, truth, *, num_labels: int | None = None):
        """How many listed labels of each image are true, against chance: one row per image.

        Columns ``image``, ``num_listed`` (labels listed), ``num_true`` (true labels), ``hits``
        (listed and true), ``chance_hits`` (the hits expected of as many labels drawn at random
        from ``num_labels``: num_listed · num_true / num_labels) and ``chance_any`` (the chance
        that such a draw holds a true label: 1 − C(num_labels − num_true, num_listed) / C(num_labels, num_listed)).
        ``num_labels`` defaults to the size of ``truth``'s vocabulary when it is a data set.
        """
        import pandas as pd
        from scipy.special import comb

        truth_sets = _label_sets(truth)
        if len(truth_sets) != len(self.results):
            raise ValueError(f"{len(truth_sets)} label sets for {len(self.results)} images; give one per image.")
        num_labels = len(truth.vocabulary) if num_labels is None else int(num_labels)
        listed = np.array([len(result.labels) for result in self.results])
        true = np.array([len(labels) for labels in truth_sets])
        hits = [sum(name in labels for name, _ in result.labels) for result, labels in zip(self.results, truth_sets)]
        return pd.DataFrame({"image": [result.image for result in self.results], "num_listed": listed, "num_true": true,
                             "hits": hits, "chance_hits": listed * true / num_labels,
                             "chance_any": 1.0 - comb(num_labels - true, listed) / comb(num_labels, listed)})

    def mistakes(self, truth, *, companions: dict | None = None):
        """The listed labels that are not true, one row per (image, label): ``image``, ``rank``, ``label``, ``score``.

        With ``companions`` (label → the labels it co-occurs with most, for example
        ``Workspace.companions()``), ``companion`` says whether the wrong label is a companion
        of one of the image's true labels.
        """
        import pandas as pd

        rows = []
        for result, labels in zip(self.results, _label_sets(truth)):
            for rank, (name, score) in enumerate(result.labels, start=1):
                if name not in labels:
                    rows.append({"image": result.image, "rank": rank, "label": name, "score": float(score),
                                 "companion": companions is not None and any(name in companions.get(true, ())
                                                                             for true in labels)})
        frame = pd.DataFrame(rows, columns=["image", "rank", "label", "score", "companion"])
        return frame if companions is not None else frame.drop(columns="companion")

    def plot(self, *, truth=None, num_images: int = 8, top: int = 3, columns: int = 4, ax=None, title: str | None = None):
        """The first ``num_images`` images as the model saw them, each captioned with its ``top`` labels and scores
        (``✓`` before a true label of ``truth``); images from files need ``wb.classify(..., keep_pixels=True)``."""
        from workbench.apps.plot import plot_image_grid

        shown = self.results[:num_images]
        if any(result.pixels is None for result in shown):
            raise ValueError("These results kept no pixels to draw; classify the files with keep_pixels=True.")
        truth_sets = _label_sets(truth) if truth is not None else [set()] * len(shown)
        captions = ["\n".join(f"{'✓ ' if name in labels else ''}{name} {score:.2f}" for name, score in result.labels[:top])
                    for result, labels in zip(shown, truth_sets)]
        return plot_image_grid([result.pixels for result in shown], titles=captions, columns=columns, ax=ax, title=title)

    def plot_bars(self, *, truth=None, num_images: int = 4):
        """The ranked labels of the first ``num_images`` images as bars, side by side (``✓`` after a true label of
        ``truth``); returns the Axes."""
        import matplotlib.pyplot as plt

        from workbench.apps.plot import plot_similarity_bars

        shown = self.results[:num_images]
        truth_sets = _label_sets(truth) if truth is not None else [set()] * len(shown)
        longest = max([len(result.labels) for result in shown] + [1])
        figure, axes = plt.subplots(1, len(shown), figsize=(4.25 * len(shown), 0.35 * longest + 1.6), squeeze=False)
        for ax, result, labels in zip(axes[0], shown, truth_sets):
            plot_similarity_bars(_ticked([name for name, _ in result.labels], labels), [score for _, score in result.labels],
                                 ax=ax, title=f"{Path(result.image).name}\ntrue: {', '.join(sorted(labels)) or '(none)'}")
        figure.tight_layout()
        return axes[0]
