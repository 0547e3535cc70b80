"""The label-space explorer: every label of an embedding on an interactive WebGL map (jupyter-scatter).

:class:`LabelExplorer` draws every label (no sampling; 17,000 labels draw in the browser in
a fraction of a second) with jupyter-scatter, whose regl-scatterplot renders through WebGL:

* **hover**: name, group, count; colour by group, frequency or a run's per-label AP; size by frequency;
* **search**: type a label and the map zooms to it and selects it with its neighbours;
* **neighbours**: its nearest labels by embedding cosine and by PMI, side by side with their values;
* **lasso**: the selection as names (:attr:`~LabelExplorer.selection`), a pandas frame
  (:meth:`~LabelExplorer.selection_frame`) and CSV (a button);
* **linked views**: ``compare=`` a second embedding of the same labels beside the first, selection
  and hover linked by label name;
* **images**: ``images=`` (:class:`~workbench.apps.labelmap.ImagePoints`, a run's predicted vectors
  for validation images) in a joint layout, hovering shows their true labels; a check box hides them.

The layout is :func:`workbench.apps.labelmap.label_coordinates` (cached on disk). Without a
kernel (an HTML export, an executed notebook) a static picture of the same map stands in
(:meth:`~LabelExplorer.static_html`, in the display data beside the widget; ``workbench run`` keeps
it; its HTML is drawn by :mod:`workbench.apps.explorer_html`).

Why one module of about 600 lines: the explorer is one widget whose parts (the maps, search,
neighbour lists, selection, linked view and image layer) read and change the same state.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

import ipywidgets as widgets
import numpy as np

from workbench.apps.labelmap import ImagePoints

__all__ = ["LabelExplorer", "ImagePoints", "STATIC_FALLBACK"]

#: Output metadata key marking display data whose static picture stands in for the widget
#: where no kernel runs (``workbench run`` keeps the picture in executed notebooks and HTML).
STATIC_FALLBACK = "workbench_static_fallback"
#: The colourings offered in the explorer's drop-down (``ap`` only with per-label AP).
COLOURINGS = {"group": "group", "frequency": "frequency (log10 images)", "ap": "per-label AP"}
#: AP bins of the ``ap`` colouring, red (poor) to green (good), grey: no validation image.
_AP_BINS = ("AP 0–0.2", "AP 0.2–0.4", "AP 0.4–0.6", "AP 0.6–0.8", "AP 0.8–1", "no validation image")
_AP_COLOURS = ("#d7191c", "#fdae61", "#e6e65c", "#a6d96a", "#1a9641", "#bbbbbb")
_IMAGE_GROUP = "(image)"


def _escape(text) -> str:
    return html.escape(str(text), quote=True)


def _message_of(error: BaseException) -> str:
    from workbench.apps.widgets import _message_of as message

    return message(error)


class LabelExplorer(widgets.VBox):
    """Explore a label embedding on an interactive map: search, neighbours, lasso, linked views, images.

    Parameters
    ----------
    embedding : LabelEmbedding
        ``vocabulary``, ``vectors`` ``(C, k)``, ``nearest(label, top=)`` and ``label_counts``.
    counts : CooccurrenceCounts, optional
        ``label_counts`` ``(C,)`` and ``pair_counts`` ``(C, C)`` in the embedding's label
        order: images per label (hover, frequency colour and size) and co-occurrences.
    pmi : array-like or sparse matrix of shape (C, C), optional
        PMI of each pair: the PMI neighbours and the PMI of each embedding neighbour.
    coordinates : array-like of shape (C, 2) or (C + N, 2), optional
        Map coordinates (labels, then ``images``); computed with
        :func:`~workbench.apps.labelmap.label_coordinates` when omitted.
    map_method : {"umap", "pca"}
    random_state : int
        Seed of the layout.
    deterministic : bool, default=False
        A seeded one-core UMAP layout (the same every time, slower; see
        :func:`~workbench.apps.labelmap.label_coordinates`).
    cache : bool or path-like, default=True
        Where layouts are kept (``True``: :func:`~workbench.apps.labelmap.default_cache_dir`).
    top : int
        Initial number of neighbours in each list.
    max_top : int
        Largest number of neighbours on the slider.
    label : str, optional
        Initial label (default: the first).
    per_label_ap : array-like of shape (C,) or mapping, optional
        A run's average precision per label (NaN: no validation image): the ``AP`` colouring.
    compare : LabelEmbedding, optional
        A second embedding of the same labels (any order), drawn beside the first; selection
        and hover are linked by label name.
    compare_title : str, optional
        Caption of the second map (default: its ``k`` and PMI policy).
    images : ImagePoints, optional
        Images in the same space, laid out jointly with the labels; a check box hides them.
    min_together : int, default=1
        With ``counts``, PMI neighbours are labels seen together at least this often.
    height : int
        Map height in pixels.
    hover_limit : int
        At most this many points carry a hover name in the static picture.
    figure_size : (float, float)
        Size of the static picture in inches (at 100 dpi).
    """

    def __init__(
        self,
        *,
        embedding,
        counts=None,
        pmi=None,
        coordinates=None,
        map_method: str = "umap",
        random_state: int = 0,
        deterministic: bool = False,
        cache=True,
        top: int = 10,
        max_top: int = 50,
        label: str | None = None,
        per_label_ap=None,
        compare=None,
        compare_title: str | None = None,
        images: ImagePoints | None = None,
        min_together: int = 1,
        height: int = 480,
        hover_limit: int = 2000,
        figure_size: tuple[float, float] = (7.0, 6.0),
    ):
        import scipy.sparse as sp

        from workbench import _checks
        from workbench.method.embedding import unit_rows

        self.embedding = embedding
        self.vocabulary = embedding.vocabulary
        self._unit = unit_rows(np.asarray(embedding.vectors, dtype=np.float64)).astype(np.float32)
        names = list(self.vocabulary.names)
        num_labels = len(names)
        if num_labels < 2:
            raise ValueError("LabelExplorer needs an embedding of at least 2 labels.")
        if counts is not None and list(counts.vocabulary.names) != names:
            raise ValueError("counts and embedding have different labels (or label order); give counts of the same vocabulary.")
        self.counts = counts
        if pmi is not None:
            pmi = sp.csr_matrix(pmi) if sp.issparse(pmi) else np.asarray(pmi, dtype=np.float64)
            if pmi.shape != (num_labels, num_labels):
                raise ValueError(f"pmi must be ({num_labels}, {num_labels}), one row and column per label; got {pmi.shape}.")
        self.pmi = pmi
        self.min_together = _checks.integer(min_together, "min_together", minimum=0)
        if images is not None and not isinstance(images, ImagePoints):
            raise ValueError("images must be ImagePoints (for a run: ImagePoints.of_run(run, data)).")
        if images is not None and images.vectors.shape[1] != embedding.embedding_dim:
            raise ValueError(f"images have {images.vectors.shape[1]}-dimensional points but the embedding has "
                             f"k = {embedding.embedding_dim}; give the predictions of a run trained against this embedding.")
        self.images = images
        num_images = 0 if images is None else len(images.names)
        self.map_method = map_method
        layout = dict(method=map_method, random_state=random_state, deterministic=deterministic, cache=cache)
        if coordinates is None:
            from workbench.apps.labelmap import label_coordinates

            vectors = embedding.vectors if images is None else np.vstack([embedding.vectors, images.vectors])
            coordinates = label_coordinates(vectors, **layout)
        coordinates = np.asarray(coordinates, dtype=np.float64)
        if coordinates.shape not in ((num_labels, 2), (num_labels + num_images, 2)) or (num_images and len(coordinates) == num_labels):
            raise ValueError(f"coordinates must be ({num_labels + num_images}, 2), one point per label"
                             f"{' and image' if num_images else ''}; got {coordinates.shape}.")
        if not np.all(np.isfinite(coordinates)):
            raise ValueError("coordinates contain NaN or infinite values; recompute the map.")
        self.coordinates = coordinates[:num_labels]
        self.image_coordinates = coordinates[num_labels:]
        self.label_counts = self._label_counts()
        self.per_label_ap = self._per_label_ap(per_label_ap)
        self.hover_limit = int(hover_limit)
        self.figure_size = tuple(figure_size)
        self.frame = self._points_frame()
        self.compare = compare
        self._compare_order = None if compare is None else self._order_of(compare)
        label = names[0] if label is None else label
        if label not in self.vocabulary:
            raise KeyError(self.vocabulary.unknown_label_message(label))

        # -- the maps -------------------------------------------------------------------
        self.scatter = self._scatter(self.frame, height=height)
        self.map = self.scatter.widget
        self.map.show(["pan_zoom", "lasso", "divider", "full_screen", "download", "reset"])
        self.compare_scatter = self.compare_map = None
        maps = [self._captioned(self.map, self._caption(embedding))]
        if compare is not None:
            vectors = np.asarray(compare.vectors)[self._compare_order]
            from workbench.apps.labelmap import label_coordinates

            other = label_coordinates(vectors, **layout)
            frame = self.frame.iloc[:num_labels].copy()
            frame["x"], frame["y"] = other[:, 0], other[:, 1]
            self.compare_coordinates = other.astype(np.float64)
            self.compare_scatter = self._scatter(frame, height=height)
            self.compare_map = self.compare_scatter.widget
            self.compare_map.show(["pan_zoom", "lasso", "divider", "reset"])
            maps.append(self._captioned(self.compare_map, compare_title or self._caption(compare)))
            self._link()

        # -- the controls ---------------------------------------------------------------
        self.chooser = widgets.Combobox(options=names, value=label, ensure_option=True, placeholder="type a label",
                                        description="Search")
        self.chooser.add_class("workbench-search")
        self.top_slider = widgets.IntSlider(
            value=int(min(top, num_labels - 1, max_top)), min=1, max=int(min(max_top, num_labels - 1)),
            description="neighbours", continuous_update=False,
        )
        options = [(COLOURINGS["group"], "group")]
        if self.label_counts is not None:
            options.append((COLOURINGS["frequency"], "frequency"))
        if self.per_label_ap is not None:
            options.append((COLOURINGS["ap"], "ap"))
        self.colour = widgets.Dropdown(options=options, value="group", description="colour")
        self.size_by_frequency = widgets.Checkbox(value=False, description="size by frequency", indent=False,
                                                  disabled=self.label_counts is None)
        self.show_images = widgets.Checkbox(value=True, description=f"{num_images} images", indent=False)
        self.show_images.layout.display = None if num_images else "none"
        self.table = widgets.HTML()
        self.table.add_class("workbench-neighbours")
        self.status = widgets.HTML()
        self.status.add_class("workbench-status")
        self.selection_status = widgets.HTML()
        self.selection_status.add_class("workbench-selection")
        self.export_path = widgets.Text(value="label_map.csv", description="map CSV")
        self.export_button = widgets.Button(description="Export map", icon="download")
        self.selection_path = widgets.Text(value="selection.csv", description="selection")
        self.selection_button = widgets.Button(description="Export selection", icon="download")
        self.selection_button.add_class("workbench-export-selection")
        self._searched = False
        self.selection_status.value = "<i>Nothing selected: search a label, or draw a lasso (shift-drag, or the lasso button).</i>"
        self.chooser.observe(self._on_choose, names="value")
        self.top_slider.observe(lambda change: self._update(), names="value")
        self.colour.observe(lambda change: self._recolour(), names="value")
        self.size_by_frequency.observe(lambda change: self._resize(), names="value")
        self.show_images.observe(lambda change: self._filter_images(), names="value")
        self.map.observe(self._on_selection, names="selection")
        self.export_button.on_click(self._on_export)
        self.selection_button.on_click(self._on_export_selection)
        super().__init__(children=[
            widgets.HBox([self.chooser, self.top_slider, self.colour, self.size_by_frequency, self.show_images]),
            self.status,
            widgets.HBox(maps, layout=widgets.Layout(width="100%")),
            self.selection_status,
            widgets.HBox([self.selection_path, self.selection_button, self.export_path, self.export_button]),
            self.table,
        ])
        self.add_class("workbench-label-explorer")
        self.label = label
        self._update(zoom=False)

    # -- set-up ------------------------------------------------------------------------
    def _label_counts(self):
        if self.counts is not None:
            return np.asarray(self.counts.label_counts, dtype=np.int64)
        counts = getattr(self.embedding, "label_counts", None)
        return None if counts is None else np.asarray(counts, dtype=np.int64)

    def _per_label_ap(self, values):
        if values is None:
            return None
        num_labels = len(self.vocabulary)
        if isinstance(values, dict):
            values = [values.get(name, np.nan) for name in self.vocabulary.names]
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (num_labels,):
            raise ValueError(f"per_label_ap must have one value per label ({num_labels}); got shape {values.shape}.")
        return values

    def _order_of(self, other) -> np.ndarray:
        """Rows of ``other`` in this embedding's label order; refused unless both have the same labels."""
        names = list(self.vocabulary.names)
        if sorted(other.vocabulary.names) != sorted(names):
            raise ValueError("compare must be an embedding of the same labels (in any order); its labels differ.")
        return np.asarray(other.vocabulary.indices(names), dtype=np.int64)

    def _points_frame(self):
        """One row per point (labels, then images): what the map draws and the hover shows."""
        import pandas as pd

        num_labels = len(self.vocabulary)
        names = list(self.vocabulary.names)
        groups = [self.vocabulary.group_of(i) or "(no group)" for i in range(num_labels)]
        counts = self.label_counts if self.label_counts is not None else np.zeros(num_labels, dtype=np.int64)
        columns = {
            "label": names, "group": groups, "count": counts, "x": self.coordinates[:, 0], "y": self.coordinates[:, 1],
            "true labels": [""] * num_labels,
        }
        if self.images is not None:
            columns["label"] = names + list(self.images.names)
            columns["group"] = groups + [_IMAGE_GROUP] * len(self.images.names)
            columns["count"] = np.concatenate([counts, [len(labels) for labels in self.images.labels]])
            columns["x"] = np.concatenate([self.coordinates[:, 0], self.image_coordinates[:, 0]])
            columns["y"] = np.concatenate([self.coordinates[:, 1], self.image_coordinates[:, 1]])
            columns["true labels"] += [", ".join(labels) for labels in self.images.labels]
        frame = pd.DataFrame(columns)
        frame["group"] = pd.Categorical(frame["group"])
        frame["frequency"] = np.log10(frame["count"].to_numpy(dtype=np.float64) + 1.0)
        if self.images is not None:
            frame.loc[num_labels:, "frequency"] = 0.0
        ap = np.full(len(frame), np.nan)
        if self.per_label_ap is not None:
            ap[:num_labels] = self.per_label_ap
        frame["ap"] = ap
        bins = np.where(np.isnan(ap), len(_AP_BINS) - 1, np.clip(np.nan_to_num(ap) * 5, 0, 4.999).astype(int))
        frame["AP bin"] = pd.Categorical([_AP_BINS[b] for b in bins], categories=list(_AP_BINS))
        frame["kind"] = ["label"] * num_labels + ["image"] * (len(frame) - num_labels)
        return frame

    def _group_colours(self, frame) -> list:
        from jscatter.color_maps import glasbey_dark

        categories = list(frame["group"].cat.categories)
        return ["#999999" if name == _IMAGE_GROUP else glasbey_dark[i % len(glasbey_dark)]
                for i, name in enumerate(categories)]

    def _scatter(self, frame, *, height: int):
        import warnings

        with warnings.catch_warnings():  # jupyter-scatter 1.0 on pandas 3: a deprecated keyword of its own
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import jscatter

        properties = ["label", "group", "count"] + (["true labels"] if self.images is not None else [])
        return jscatter.Scatter(
            data=frame, x="x", y="y", color_by="group", color_map=self._group_colours(frame), legend=False,
            size=4, height=int(height), axes=False, tooltip=True, tooltip_properties=properties,
            zoom_animation=500, zoom_padding=0.5, lasso_initiator=False,
        )

    def _caption(self, embedding) -> str:
        options = (getattr(embedding, "settings", None) or {}).get("options", {})
        policy = f", {options['policy']}" if "policy" in options else ""
        return (f"{len(embedding.vocabulary):,} labels, k = {embedding.embedding_dim}{policy} "
                f"({self.map_method.upper()})")

    @staticmethod
    def _captioned(widget, caption: str):
        title = widgets.HTML(f'<b class="workbench-map-caption">{_escape(caption)}</b>')
        return widgets.VBox([title, widget], layout=widgets.Layout(flex="1 1 0%", min_width="0"))

    def _link(self) -> None:
        """Selection and hover of the two maps follow each other (rows are in the same label order)."""
        num_labels = len(self.vocabulary)
        pairs = ((self.map, self.compare_map), (self.compare_map, self.map))
        busy = {"selection": False, "hovering": False}

        def follower(source, target, name):
            def follow(change):
                if busy[name]:
                    return
                busy[name] = True
                try:
                    value = change["new"]
                    if name == "selection":
                        rows = np.asarray([] if value is None else value, dtype=np.int64)
                        target.selection = rows[rows < num_labels].astype(np.uint32)
                    else:
                        target.hovering = value if value is not None and 0 <= value < num_labels else -1
                finally:
                    busy[name] = False
            return follow

        for source, target in pairs:
            source.observe(follower(source, target, "selection"), names="selection")
            source.observe(follower(source, target, "hovering"), names="hovering")

    # -- queries ----------------------------------------------------------------------
    def neighbours(self, label: str | None = None, *, top: int | None = None) -> list[dict]:
        """The nearest labels of ``label`` by cosine: ``label, similarity, pmi, cooccurrences, label_count``.

        ``pmi`` and ``cooccurrences`` are None without ``pmi``/``counts``.
        """
        label = self.label if label is None else label
        top = int(self.top_slider.value) if top is None else int(top)
        position = self.vocabulary.index(label)
        # as LabelEmbedding.nearest computes them (the same float32 unit rows and product), the unit rows kept
        similarity = (self._unit[position][None] @ self._unit.T).clip(-1.0, 1.0)[0]
        similarity[position] = -np.inf
        order = np.argsort(-similarity, kind="stable")[: min(top, len(similarity) - 1)]
        return [self._row(label, self.vocabulary[int(i)], similarity=float(similarity[i])) for i in order]

    def pmi_neighbours(self, label: str | None = None, *, top: int | None = None) -> list[dict]:
        """The labels of highest PMI with ``label`` (seen together at least ``min_together`` times with counts).

        Rows as :meth:`neighbours` (``similarity``: their embedding cosine), largest PMI first;
        empty without ``pmi``.
        """
        if self.pmi is None:
            return []
        import scipy.sparse as sp

        label = self.label if label is None else label
        top = int(self.top_slider.value) if top is None else int(top)
        position = self.vocabulary.index(label)
        if sp.issparse(self.pmi):
            row = self.pmi.getrow(position)
            others, values = row.indices.astype(np.int64), row.data.astype(np.float64)
        else:
            values = self.pmi[position].astype(np.float64)
            others = np.arange(len(values))
        keep = (others != position) & np.isfinite(values)
        if self.counts is not None and self.min_together > 0:
            together = np.asarray(self.counts.pair_counts[position, others[keep]].todense()).ravel() \
                if sp.issparse(self.counts.pair_counts) else np.asarray(self.counts.pair_counts)[position, others[keep]]
            chosen = np.flatnonzero(keep)[together >= self.min_together]
            keep = np.zeros_like(keep)
            keep[chosen] = True
        others, values = others[keep], values[keep]
        order = np.lexsort((others, -values))[:top]  # largest PMI first, ties by vocabulary order
        cosines = self._unit[others[order]].astype(np.float64) @ self._unit[position].astype(np.float64)
        return [self._row(label, self.vocabulary[int(other)], similarity=float(cosine))
                for other, cosine in zip(others[order], cosines)]

    def _row(self, label: str, name: str, *, similarity: float) -> dict:
        position, other = self.vocabulary.index(label), self.vocabulary.index(name)
        row = {"label": name, "similarity": similarity, "pmi": None, "cooccurrences": None, "label_count": None}
        if self.pmi is not None:
            row["pmi"] = float(self.pmi[position, other])
        if self.counts is not None:
            row["cooccurrences"] = int(self.counts.pair_counts[position, other])
        if self.label_counts is not None:
            row["label_count"] = int(self.label_counts[other])
        return row

    @property
    def selection(self) -> list[str]:
        """Names of the selected points (labels, then images), in map order: the lasso's or the search's."""
        rows = np.sort(np.asarray(self.map.selection if self.map.selection is not None else [], dtype=np.int64))
        return list(self.frame["label"].iloc[rows])

    def selection_frame(self):
        """The selected points as a frame: ``label, group, count, x, y`` (``ap`` with per-label AP; ``kind`` and
        ``true labels`` with images), one row per point in map order."""
        rows = np.sort(np.asarray(self.map.selection if self.map.selection is not None else [], dtype=np.int64))
        columns = ["label", "group", "count", "x", "y"]
        if self.per_label_ap is not None:
            columns.append("ap")
        if self.images is not None:
            columns += ["kind", "true labels"]
        frame = self.frame.iloc[rows][columns].reset_index(drop=True)
        frame["group"] = frame["group"].astype(str)
        return frame

    def select(self, label: str) -> None:
        """Search ``label`` (as if typed in the search box): select it and its neighbours and zoom there; unknown names leave a message."""
        if label == self.chooser.value:  # the box holds it already: no change to observe
            self._on_choose(None)
        else:
            self.chooser.value = label

    def select_labels(self, labels) -> None:
        """Select these labels on the map (as a lasso would) and zoom to them."""
        rows = self.vocabulary.indices(list(labels))
        self.scatter.selection(rows)
        if rows:
            self.scatter.zoom(to=rows)

    def export_csv(self, path: str | Path) -> Path:
        """Write the map's ``label,group,count,x,y`` CSV atomically (see :func:`workbench.apps.labelmap.write_coordinates_csv`)."""
        from workbench.apps.labelmap import write_coordinates_csv

        return write_coordinates_csv(path, vocabulary=self.vocabulary, coordinates=self.coordinates, counts=self.label_counts)

    def export_selection(self, path: str | Path) -> Path:
        """Write :meth:`selection_frame` as CSV atomically; returns the path."""
        from workbench._io import atomic_write_text

        path = Path(path)
        atomic_write_text(path, self.selection_frame().to_csv(index=False))
        return path

    # -- events -----------------------------------------------------------------------
    def _on_choose(self, change) -> None:
        value = self.chooser.value
        if value not in self.vocabulary:
            if value:  # while typing the box holds partial names: say so, keep the view
                self.status.value = f'<span style="color:#b00">{_escape(self.vocabulary.unknown_label_message(value))}</span>'
            return
        self.label = value
        self._update()

    def _on_selection(self, change) -> None:
        rows = np.asarray(change["new"] if change["new"] is not None else [], dtype=np.int64)
        num_labels = len(self.vocabulary)
        labels, images = int(np.sum(rows < num_labels)), int(np.sum(rows >= num_labels))
        what = f"{labels} label{'s' if labels != 1 else ''}" + (f" and {images} image{'s' if images != 1 else ''}" if images else "")
        origin = f" ({self.label} and its neighbours)" if len(rows) and self._searched else ""
        self._searched = False
        self.selection_status.value = f"Selected: {_escape(what)}{_escape(origin)}" if len(rows) else "<i>Nothing selected: search a label, or draw a lasso (shift-drag, or the lasso button).</i>"
        self.selection_button.disabled = not len(rows)

    def _on_export(self, _button=None) -> None:
        try:
            path = self.export_csv(self.export_path.value.strip() or "label_map.csv")
            self.status.value = _escape(f"Wrote {len(self.vocabulary)} labels to {path}.")
        except Exception as error:  # noqa: BLE001
            self.status.value = f'<span style="color:#b00">{_escape("Export failed: " + _message_of(error))}</span>'

    def _on_export_selection(self, _button=None) -> None:
        try:
            count = len(self.selection)
            path = self.export_selection(self.selection_path.value.strip() or "selection.csv")
            self.status.value = _escape(f"Wrote {count} selected points to {path}.")
        except Exception as error:  # noqa: BLE001
            self.status.value = f'<span style="color:#b00">{_escape("Export failed: " + _message_of(error))}</span>'

    def _update(self, *, zoom: bool = True) -> None:
        """Neighbour tables of the chosen label; with ``zoom`` (a search) the map selects it and its neighbours and zooms there."""
        try:
            rows, pmi_rows = self.neighbours(), self.pmi_neighbours()
            self.table.value = self._table_html(rows, pmi_rows)
            self.status.value = ""
            if not zoom:
                return
            chosen = self.vocabulary.index(self.label)
            marked = list(dict.fromkeys([chosen] + [self.vocabulary.index(row["label"]) for row in rows + pmi_rows]))
            self._searched = True
            self.scatter.selection(marked)
            self.scatter.zoom(to=marked)
            if self.compare_scatter is not None:
                self.compare_scatter.zoom(to=marked)
        except Exception as error:  # noqa: BLE001
            self.status.value = f'<span style="color:#b00">{_escape(_message_of(error))}</span>'

    def _recolour(self) -> None:
        for scatter in filter(None, (self.scatter, self.compare_scatter)):
            if self.colour.value == "group":
                scatter.color(by="group", map=self._group_colours(self.frame))
            elif self.colour.value == "frequency":
                scatter.color(by="frequency", map="viridis")
            else:
                scatter.color(by="AP bin", map=list(_AP_COLOURS))

    def _resize(self) -> None:
        for scatter in filter(None, (self.scatter, self.compare_scatter)):
            if self.size_by_frequency.value:
                scatter.size(by="frequency", map=(2, 14, 12))
            else:
                scatter.size(by=None, map=None)
                scatter.size(4)

    def _filter_images(self) -> None:
        if self.images is not None:
            self.scatter.filter(None if self.show_images.value else list(range(len(self.vocabulary))))

    # -- drawing ----------------------------------------------------------------------
    def _table_html(self, rows: list[dict], pmi_rows: list[dict]) -> str:
        from workbench.apps.explorer_html import neighbour_tables_html

        own = ""
        if self.label_counts is not None:
            total = f" of {self.counts.n_images}" if self.counts is not None else ""
            own = f" — in {int(self.label_counts[self.vocabulary.index(self.label)])}{total} images"
        seen = f", seen together ≥ {self.min_together}×" if self.counts is not None and self.min_together else ""
        return neighbour_tables_html(self.label, rows, pmi_rows if self.pmi is not None else None, own=own,
                                     counts=self.counts is not None, label_counts=self.label_counts is not None,
                                     pmi_caption=f"highest PMI{seen}")

    def _static(self) -> dict:
        groups = self.vocabulary.groups if self.vocabulary.groups is not None and any(self.vocabulary.groups) else None
        method = self.map_method.upper() if self.map_method else "given"
        return dict(labels=list(self.vocabulary.names), groups=groups, chosen=self.vocabulary.index(self.label),
                    highlight=[self.vocabulary.index(row["label"]) for row in self.neighbours()],
                    title=f"{len(self.vocabulary):,} labels ({method} map)", figure_size=self.figure_size,
                    image_coordinates=self.image_coordinates if self.show_images.value else None)

    def static_png(self, *, dpi: int = 100) -> bytes:
        """The map as a PNG picture: every label coloured by group, the chosen label and its neighbours named."""
        from workbench.apps.explorer_html import static_map_figure

        figure, _ = static_map_figure(self.coordinates, dpi=dpi, **self._static())
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()

    def static_html(self) -> str:
        """The static picture as an ``<img>`` with an image map: hover names for up to ``hover_limit`` labels
        (:func:`~workbench.apps.explorer_html.static_map_html`)."""
        from workbench.apps.explorer_html import static_map_html

        return static_map_html(self.coordinates, hover_limit=self.hover_limit, **self._static())

    def _repr_mimebundle_(self, **kwargs):
        """The widget, and the static picture for places without a kernel (HTML exports, executed notebooks)."""
        bundle = super()._repr_mimebundle_(**kwargs)
        data = dict(bundle[0] if isinstance(bundle, tuple) else bundle or {})
        try:
            data["text/html"] = self.static_html()
        except Exception:  # noqa: BLE001 - the widget itself still shows
            return data
        return data, {STATIC_FALLBACK: True}

