"""Every matplotlib figure of the workbench; functions take ax=None and return the axes.

Why one module of about 870 lines: plotting lives in one place (as in umap-learn's
``plot.py``), so computation never imports matplotlib and every figure shares one style.
"""

from __future__ import annotations

import numpy as np

from workbench import _checks
from workbench.method.targets import K_HEADS

#: One colour per head in every figure of results (the controls beside the heads they control).
HEAD_COLOURS = {"pmi": "C0", "random": "C1", "identity": "C2", "sigmoid": "C3", "shuffled": "C4",
                "random-matched": "C5", "learned": "C6", "sigmoid-lowrank": "C8"}

__all__: list[str] = []


def _axes(ax, *, figsize=(6.0, 4.0)):
    """``ax`` itself, or the axes of a new figure of ``figsize`` inches."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=figsize)
    return ax


def save_figure(ax, path, *, dpi: int = 100):
    """Save the figure holding ``ax`` (an Axes or a Figure) to ``path`` atomically; return the path.

    The format follows the suffix (``.png``, ``.svg``, ``.pdf`` …).
    """
    from pathlib import Path

    from workbench._io import atomic_path

    path = Path(path)
    figure = ax if not hasattr(ax, "figure") or ax.figure is None else ax.figure
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path, suffix=path.suffix or ".png") as temporary:
        figure.savefig(temporary, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


def save_plot(plot, data, path, **options):
    """Draw ``plot(data, **options)`` on a new figure, save it to ``path`` atomically and close it; return the path.

    For commands and jobs that write a figure file and show nothing (``workbench compare``,
    ``ceiling``, ``experiment``): when pyplot is not loaded yet, figures are drawn without a
    display (the Agg backend); a notebook's backend is left as it is.
    """
    import sys

    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = plot(data, **options)
    try:
        return save_figure(ax, path)
    finally:
        plt.close(ax.figure)


def figure_png(ax, *, dpi: int = 100) -> bytes:
    """The figure holding ``ax`` (an Axes or a Figure) as PNG bytes (for widgets and HTML)."""
    import io

    figure = ax if not hasattr(ax, "figure") or ax.figure is None else ax.figure
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


__all__ += ["save_figure", "figure_png", "plot_threshold_sweep", "plot_ceiling", "plot_experiment",
            "plot_experiment_curves", "plot_label_ap_by_frequency"]


# ---------------------------------------------------------------------------------
# training curves (issue 4)
# ---------------------------------------------------------------------------------
# >>> section training
__all__ += ["plot_comparison_curves"]


def plot_comparison_curves(results: dict, *, metric: str = "map_at_100", spread: str = "std", x: str = "epoch", ax=None):
    """A validation metric against epochs, one line per head: the mean over seeds and its spread.

    Parameters
    ----------
    results : dict
        ``{"runs": [{"head", "seed", "history": [{"epoch", metric, …}, …]}, …]}`` as
        written by :func:`workbench.experiments.compare.compare` (``results.json``).
    metric : str, default="map_at_100"
        A key of the history records.
    spread : {"std", "range", "none"}, default="std"
        Shaded band: mean ± sample standard deviation over seeds, min–max, or none.
    x : {"epoch", "seconds"}, default="epoch"
        Against epochs, or against cumulative training wall-clock seconds (each point at
        the seeds' mean time to reach that epoch).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if spread not in ("std", "range", "none"):
        raise ValueError(f"spread must be 'std', 'range' or 'none'; got {spread!r}.")
    if x not in ("epoch", "seconds"):
        raise ValueError(f"x must be 'epoch' or 'seconds'; got {x!r}.")
    ax = _axes(ax)
    curves: dict[str, list[dict[int, float]]] = {}
    clocks: dict[str, list[dict[int, float]]] = {}
    for run in results.get("runs", []):
        history = run.get("history", [])
        values = {int(record["epoch"]): float(record[metric]) for record in history if record.get(metric) is not None}
        elapsed = np.cumsum([float(record.get("seconds") or 0.0) for record in history])
        curves.setdefault(str(run["head"]), []).append(values)
        clocks.setdefault(str(run["head"]), []).append({int(r["epoch"]): float(t) for r, t in zip(history, elapsed)})
    for head, runs in curves.items():
        epochs = sorted(set.intersection(*(set(values) for values in runs))) if runs else []
        if not epochs:
            continue
        matrix = np.array([[values[epoch] for epoch in epochs] for values in runs], dtype=np.float64)
        mean = matrix.mean(axis=0)
        if x == "seconds":
            epochs = np.mean([[clock[epoch] for epoch in epochs] for clock in clocks[head]], axis=0)
        (line,) = ax.plot(epochs, mean, marker="o", markersize=3, label=f"{head} ({len(runs)} seed{'s' if len(runs) > 1 else ''})")
        if len(runs) > 1 and spread != "none":
            if spread == "std":
                deviation = matrix.std(axis=0, ddof=1)
                low, high = mean - deviation, mean + deviation
            else:
                low, high = matrix.min(axis=0), matrix.max(axis=0)
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    label = metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP").replace("_", " ")
    ax.set_xlabel("epoch" if x == "epoch" else "training wall-clock seconds (mean over seeds)")
    ax.set_ylabel(f"validation {label}")
    band = {"std": "line: mean, band: ± 1 std over seeds", "range": "line: mean, band: min–max over seeds",
            "none": "mean over seeds"}[spread]
    ax.set_title(f"{label} per {'epoch' if x == 'epoch' else 'second of training'} ({band})")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend()
    return ax


# <<< section training

# ---------------------------------------------------------------------------------
# label embeddings: spectrum, PMI heatmap, label map (issue 5)
# ---------------------------------------------------------------------------------
# >>> section embedding
__all__ += ["plot_spectrum", "clustered_order", "plot_pmi_heatmap", "plot_label_map"]


def plot_spectrum(eigenvalues, *, k: int | None = None, ax=None, title: str | None = "Spectrum of the PMI matrix",
                  label: str | None = None):
    """Eigenvalues, most significant first, one bar each; the ``k`` kept by the embedding marked.

    Parameters
    ----------
    eigenvalues : array-like of shape (n,)
        Sorted by signed value, largest first (as :func:`workbench.method.embed.spectrum`
        returns them). Positive values are drawn blue, negative orange.
    k : int, optional
        The embedding's dimension: a dashed line after the ``k``-th bar, in the legend.
    ax : matplotlib Axes, optional
    label : str, optional
        Prefix of the legend entries (for example the PMI policy), when several spectra share a figure.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from matplotlib.patches import Patch

    values = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError("plot_spectrum needs at least one finite eigenvalue.")
    ax = _axes(ax)
    colours = np.where(values >= 0, "tab:blue", "tab:orange")
    ax.bar(np.arange(1, values.size + 1), values, color=colours, width=0.8)
    ax.axhline(0.0, color="black", linewidth=0.8)
    prefix = f"{label}: " if label else ""
    handles = [Patch(color="tab:blue", label=f"{prefix}{int(np.sum(values > 0))} positive"),
               Patch(color="tab:orange", label=f"{prefix}{int(np.sum(values < 0))} negative")]
    if k is not None:
        handles.append(ax.axvline(_checks.integer(k, "k") + 0.5, color="black", linestyle="--", linewidth=1,
                                  label=f"k = {k} (kept: the bars to its left)"))
    ax.legend(handles=handles, fontsize="small")
    ax.set_xlabel("rank of the eigenvalue (sorted by signed value)")
    ax.set_ylabel("eigenvalue")
    if title:
        ax.set_title(title)
    return ax


def clustered_order(matrix) -> np.ndarray:
    """Row order that puts similar rows together (scipy average-linkage leaves order).

    Parameters
    ----------
    matrix : array-like of shape (C, C)
        For example a PMI matrix; non-finite entries count as the smallest finite value.

    Returns
    -------
    ndarray of shape (C,), dtype int64
        A permutation of ``range(C)``.
    """
    from scipy.cluster.hierarchy import leaves_list, linkage

    values = _finite_dense(matrix)
    if values.shape[0] < 3:
        return np.arange(values.shape[0], dtype=np.int64)
    return leaves_list(linkage(values, method="average", metric="euclidean", optimal_ordering=True)).astype(np.int64)


def _finite_dense(matrix) -> np.ndarray:
    """A dense float64 square matrix with non-finite values replaced by the smallest finite one."""
    import scipy.sparse as sp

    values = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    values = values.astype(np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1]:
        raise ValueError(f"Expected a square (num_labels, num_labels) matrix; got shape {values.shape}.")
    finite = np.isfinite(values)
    if not finite.all():
        floor = values[finite].min() if finite.any() else 0.0
        values = np.where(finite, values, floor)
    return values


def plot_pmi_heatmap(pmi, *, labels=None, order: str | None = "cluster", max_tick_labels: int = 60, ax=None, title=None):
    """PMI matrix as a heatmap, rows and columns in clustered order.

    Parameters
    ----------
    pmi : array-like or sparse matrix of shape (C, C)
        Non-finite entries (pairs that never co-occur) are drawn grey.
    labels : sequence of str, optional
        Label names; written on the axes when ``C <= max_tick_labels``.
    order : {"cluster", None}
        ``"cluster"``: :func:`clustered_order`; None: vocabulary order.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]``; the permutation used is stored as ``ax.label_order``.
    """
    import matplotlib
    import scipy.sparse as sp

    values = pmi.toarray() if sp.issparse(pmi) else np.asarray(pmi)
    values = values.astype(np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise ValueError(f"plot_pmi_heatmap needs a square (num_labels, num_labels) matrix; got shape {values.shape}.")
    if labels is not None and len(labels) != values.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {values.shape[0]}×{values.shape[0]} matrix; give one name per row.")
    if order == "cluster":
        permutation = clustered_order(values)
    elif order is None:
        permutation = np.arange(values.shape[0])
    else:
        raise ValueError(f"order must be 'cluster' or None; got {order!r}.")
    shown = np.ma.masked_invalid(values[np.ix_(permutation, permutation)])
    limit = float(np.abs(shown).max()) if shown.count() else 1.0
    limit = limit or 1.0
    ax = _axes(ax, figsize=(7.0, 6.0))
    cmap = matplotlib.colormaps["RdBu_r"].with_extremes(bad="lightgrey")
    image = ax.imshow(shown, cmap=cmap, vmin=-limit, vmax=limit, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="PMI")
    if labels is not None and len(labels) <= max_tick_labels:
        names = [str(labels[i]) for i in permutation]
        ax.set_xticks(np.arange(len(names)), names, rotation=90, fontsize=7)
        ax.set_yticks(np.arange(len(names)), names, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title or f"PMI of {values.shape[0]} labels" + (" (clustered order)" if order == "cluster" else ""))
    ax.label_order = permutation
    return ax


#: tab20 indices kept out of :func:`plot_label_map`'s group colours: oranges and reds mark the highlighted and
#: chosen labels, greys the groups beyond the palette.
_RESERVED_HUES = (2, 3, 6, 7, 14, 15)


def plot_label_map(
    coordinates,
    *,
    labels=None,
    groups=None,
    chosen: int | None = None,
    highlight=None,
    ax=None,
    title: str | None = None,
    point_size: float | None = None,
    legend: bool = True,
    legend_title: str = "group",
):
    """Scatter of every label on a 2-D map, the chosen label and its neighbours named.

    Parameters
    ----------
    coordinates : array-like of shape (C, 2)
        From :func:`workbench.apps.labelmap.label_coordinates`.
    labels : sequence of str, optional
        Names; needed to annotate ``chosen`` and ``highlight``.
    groups : sequence of str, optional
        A group per label; points are coloured by group (up to 14 groups, the rest grey; no
        group gets the orange of the highlighted labels or the red of the chosen one).
    chosen : int, optional
        Index of the label in focus (drawn as a red star, annotated in bold).
    highlight : sequence of int, optional
        Indices drawn large and annotated (for example the nearest labels).
    ax : matplotlib Axes, optional
    legend : bool, default=True
        With ``groups``, a legend of the group colours (the first 14 groups), its markers as
        transparent as the points.
    legend_title : str, default="group"
        What the groups are (for example "scene theme").
    point_size : float, optional
        Marker size of the background points (default shrinks with ``C``, so 17,000
        labels stay readable).

    Returns
    -------
    matplotlib.axes.Axes
        ``ax.collections[0]`` holds every label; the annotations are ``ax.texts``.
    """
    points = np.asarray(coordinates, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise ValueError(f"plot_label_map needs (num_labels, 2) coordinates; got shape {points.shape}.")
    num_labels = points.shape[0]
    for name, values in (("labels", labels), ("groups", groups)):
        if values is not None and len(values) != num_labels:
            raise ValueError(f"{len(values)} {name} for {num_labels} points; give one per label.")
    highlight = [int(i) for i in (highlight if highlight is not None else [])]
    marked = highlight + ([int(chosen)] if chosen is not None else [])
    if any(not 0 <= i < num_labels for i in marked):
        raise ValueError(f"Highlighted label indices must be in 0..{num_labels - 1}.")
    if marked and labels is None:
        raise ValueError("Give labels= to name the chosen and highlighted labels.")
    ax = _axes(ax, figsize=(7.0, 6.0))
    size = point_size if point_size is not None else float(np.clip(3000.0 / num_labels, 2.0, 30.0))
    if groups is not None:
        names = list(dict.fromkeys(str(g) for g in groups))
        from matplotlib import colormaps

        # tab20 without its oranges, reds and greys (those mark the neighbours, the chosen label, the
        # rest), its seven strong shades first, then the seven pale ones
        palette = [colormaps["tab20"](i) for i in list(range(0, 20, 2)) + list(range(1, 20, 2)) if i not in _RESERVED_HUES]
        colour_of = {name: (palette[i] if i < len(palette) else (0.6, 0.6, 0.6, 1.0)) for i, name in enumerate(names)}
        colours = [colour_of[str(g)] for g in groups]
    else:
        colours = "tab:blue"
    alpha = 0.55 if marked else 0.8
    ax.scatter(points[:, 0], points[:, 1], s=size, c=colours, alpha=alpha, linewidths=0)
    if highlight:
        ax.scatter(points[highlight, 0], points[highlight, 1], s=60, c="tab:orange", edgecolors="black", linewidths=0.6, zorder=3)
    if chosen is not None:
        ax.scatter(points[[chosen], 0], points[[chosen], 1], s=220, c="red", marker="*", edgecolors="black", linewidths=0.6, zorder=4)
    box = dict(boxstyle="round,pad=0.2", facecolor="white", alpha=0.8, linewidth=0)
    for i in highlight:
        ax.annotate(str(labels[i]), points[i], xytext=(4, 4), textcoords="offset points", fontsize=8, bbox=box, zorder=5)
    if chosen is not None:
        ax.annotate(
            str(labels[chosen]), points[chosen], xytext=(6, -12), textcoords="offset points", fontsize=10,
            fontweight="bold", bbox=box, zorder=6,
        )
    if groups is not None and legend:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], marker="o", linestyle="", markersize=6, markerfacecolor=colour_of[name], markeredgewidth=0,
                   alpha=alpha, label=name)  # as the points are drawn
            for name in names[:len(palette)]
        ]
        ax.legend(handles=handles, title=legend_title, fontsize=7, title_fontsize=8, loc="best", framealpha=0.8)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax


# <<< section embedding

# ---------------------------------------------------------------------------------
# classification: similarity bars, sample grids (issue 5)
# ---------------------------------------------------------------------------------
# >>> section classify
__all__ += ["plot_similarity_bars", "plot_image_grid"]


def plot_similarity_bars(labels, similarities, *, ax=None, title: str | None = None, xlim=None):
    """Ranked labels of one image as horizontal bars, best at the top.

    Parameters
    ----------
    labels : sequence of str, length L
    similarities : array-like of shape (L,)
        Cosine similarities (or probabilities), best first.
    ax : matplotlib Axes, optional
    xlim : (float, float), optional
        Default ``(min(0, smallest), 1)``.

    Returns
    -------
    matplotlib.axes.Axes
        One bar (``ax.patches``) and one value text (``ax.texts``) per label.
    """
    values = np.asarray(similarities, dtype=np.float64).reshape(-1)
    if len(labels) != values.size:
        raise ValueError(f"{len(labels)} labels but {values.size} similarities; give one similarity per label.")
    if not np.all(np.isfinite(values)):
        raise ValueError("plot_similarity_bars got NaN or infinite similarities.")
    ax = _axes(ax, figsize=(5.0, 0.35 * max(len(labels), 1) + 0.8))
    positions = np.arange(values.size)[::-1]
    colours = np.where(values >= 0, "tab:blue", "tab:red")
    ax.barh(positions, values, color=colours, height=0.7)
    ax.set_yticks(positions, [str(name) for name in labels])
    for position, value in zip(positions, values):
        ax.text(max(value, 0.0) + 0.01, position, f"{value:.3f}", va="center", fontsize=8)
    low = min(0.0, float(values.min())) if values.size else 0.0
    ax.set_xlim(xlim if xlim is not None else (low, 1.1))
    ax.set_xlabel("similarity")
    if title:
        ax.set_title(title)
    return ax


def plot_image_grid(images, *, titles=None, columns: int = 4, ax=None, title: str | None = None):
    """Images tiled on one axes, each with its caption (for example its top labels).

    Parameters
    ----------
    images : array-like of shape (N, H, W, 3), dtype uint8, or a sequence of (H, W, 3) arrays
    titles : sequence of str, optional
        One caption per image (may contain newlines).
    columns : int
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One image (``ax.images``) and, with ``titles``, one caption (``ax.texts``) per image.
    """
    images = [np.asarray(image) for image in images]
    if not images:
        raise ValueError("plot_image_grid needs at least one image.")
    if titles is not None and len(titles) != len(images):
        raise ValueError(f"{len(titles)} titles for {len(images)} images; give one title per image.")
    columns = _checks.integer(columns, "columns")
    columns = int(min(columns, len(images)))
    rows = -(-len(images) // columns)
    caption_lines = max((str(t).count("\n") + 1 for t in titles), default=0) if titles is not None else 0
    cell_height = 1.0 + 0.16 * caption_lines
    ax = _axes(ax, figsize=(2.2 * columns, 2.2 * rows * cell_height))
    for position, image in enumerate(images):
        if image.ndim not in (2, 3):
            raise ValueError(f"Image {position} has shape {image.shape}; expected (height, width, 3).")
        row, column = divmod(position, columns)
        top = row * cell_height
        ax.imshow(image, extent=(column + 0.05, column + 0.95, top + 0.95, top + 0.05), interpolation="nearest")
        if titles is not None:
            ax.text(column + 0.5, top + 1.0, str(titles[position]), ha="center", va="top", fontsize=7)
    ax.set_xlim(0, columns)
    ax.set_ylim(rows * cell_height, 0)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title)
    return ax


# <<< section classify

# ---------------------------------------------------------------------------------
# the teaching notebooks: label frequencies, count matrices, k choice, run history
# ---------------------------------------------------------------------------------
# >>> section notebooks
__all__ += ["plot_label_frequencies", "plot_count_matrix", "plot_energy_curve", "plot_history"]


def plot_label_frequencies(label_counts, *, labels=None, annotate: int = 5, ax=None, title: str | None = None):
    """Rank–frequency plot of labels on log–log axes (a straight line is Zipf's law).

    Parameters
    ----------
    label_counts : array-like of shape (C,)
        Images per label.
    labels : sequence of str, optional
        Names; the ``annotate`` most frequent labels are written next to their point.
    annotate : int, default=5
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The points are ``ax.lines[0]`` (rank 1 = most frequent), annotations ``ax.texts``.
    """
    counts = np.asarray(label_counts, dtype=np.float64).reshape(-1)
    if counts.size == 0 or not np.all(np.isfinite(counts)) or np.any(counts < 0):
        raise ValueError("plot_label_frequencies needs non-negative, finite label counts.")
    if labels is not None and len(labels) != counts.size:
        raise ValueError(f"{len(labels)} labels for {counts.size} counts; give one name per label.")
    order = np.argsort(-counts, kind="stable")
    shown = order[counts[order] > 0]  # log axes cannot show labels that never occur
    ranks = np.arange(1, shown.size + 1)
    ax = _axes(ax)
    ax.plot(ranks, counts[shown], marker="o", markersize=3, linestyle="-", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    if labels is not None:
        for rank, index in zip(ranks[:annotate], shown[:annotate]):
            ax.annotate(str(labels[index]), (rank, counts[index]), xytext=(5, 2), textcoords="offset points", fontsize=8)
    ax.set_xlabel("label rank (1 = most frequent)")
    ax.set_ylabel("images with the label")
    ax.set_title(title or "Label frequencies")
    ax.grid(True, which="both", alpha=0.3)
    return ax


def plot_count_matrix(matrix, *, labels=None, ax=None, title: str | None = None, colorbar_label: str = "images",
                      annotate: bool = True):
    """A small non-negative matrix (co-occurrence counts) as a heatmap, values written in the cells.

    Parameters
    ----------
    matrix : array-like or sparse matrix of shape (C, C)
    labels : sequence of str, optional
        Row and column names.
    annotate : bool, default=True
        Write each value in its cell (only when ``C <= 20``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The image is ``ax.images[0]``.
    """
    import scipy.sparse as sp

    values = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    values = values.astype(np.float64)
    if values.ndim != 2 or values.shape[0] != values.shape[1] or values.shape[0] == 0:
        raise ValueError(f"plot_count_matrix needs a square matrix; got shape {values.shape}.")
    if labels is not None and len(labels) != values.shape[0]:
        raise ValueError(f"{len(labels)} labels for a {values.shape[0]}×{values.shape[0]} matrix; give one name per row.")
    ax = _axes(ax, figsize=(6.5, 5.5))
    image = ax.imshow(values, cmap="viridis", interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label=colorbar_label)
    size = values.shape[0]
    if labels is not None:
        ax.set_xticks(np.arange(size), [str(name) for name in labels], rotation=90, fontsize=8)
        ax.set_yticks(np.arange(size), [str(name) for name in labels], fontsize=8)
    if annotate and size <= 20:
        top = values.max() if values.size else 0.0
        for i in range(size):
            for j in range(size):
                text = f"{values[i, j]:.0f}" if float(values[i, j]).is_integer() else f"{values[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="black" if values[i, j] > 0.6 * top else "white")
    ax.set_title(title or "Co-occurrence counts")
    return ax


def plot_energy_curve(dims, energy, *, error=None, chosen: int | None = None, ax=None, title: str | None = None):
    """How much of the PMI matrix ``k`` dimensions keep: energy (and reconstruction error) against ``k``.

    Parameters
    ----------
    dims : array-like of shape (K,)
        The ``k`` values.
    energy : array-like of shape (K,)
        Share of the squared eigenvalues kept, in [0, 1].
    error : array-like of shape (K,), optional
        Relative reconstruction error ``‖M − E Eᵀ‖ / ‖M‖``, drawn on the same axis.
    chosen : int, optional
        The ``k`` in use, marked with a vertical line.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    dims = np.asarray(dims, dtype=np.float64).reshape(-1)
    energy = np.asarray(energy, dtype=np.float64).reshape(-1)
    if dims.size == 0 or dims.shape != energy.shape:
        raise ValueError(f"dims and energy must be non-empty and of one length; got {dims.shape} and {energy.shape}.")
    ax = _axes(ax)
    ax.plot(dims, energy, marker="o", markersize=3, label="energy kept (share of Σλ²)")
    if error is not None:
        error = np.asarray(error, dtype=np.float64).reshape(-1)
        if error.shape != dims.shape:
            raise ValueError(f"error has shape {error.shape}; expected {dims.shape}.")
        ax.plot(dims, error, marker="s", markersize=3, label="relative reconstruction error")
    if chosen is not None:
        ax.axvline(chosen, color="grey", linestyle="--", linewidth=1, label=f"k = {chosen}")
    ax.set_xlabel("embedding dimension k")
    ax.set_ylabel("share")
    ax.set_ylim(0, 1.05)
    ax.set_title(title or "Choosing k")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return ax


def plot_ceiling(report, *, metric: str = "map_at_100", ax=None, title: str | None = None):
    """The decoding ceiling against ``k``: one line per embedding, the identity as a horizontal line.

    Parameters
    ----------
    report : dict
        From :func:`workbench.evaluation.ceiling.decoding_ceiling` (or ``ceiling.json``).
    metric : {"map_at_100", "macro_ap"}, default="map_at_100"
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    rows = report["rows"]
    for name in dict.fromkeys(row["embedding"] for row in rows):
        mine = sorted((row for row in rows if row["embedding"] == name), key=lambda row: row["dim"])
        values = [np.nan if row[metric] is None else row[metric] for row in mine]
        if name == "identity":
            ax.axhline(values[0], color="grey", linestyle="--", linewidth=1, label=f"identity (k = C = {mine[0]['dim']})")
            continue
        ax.plot([row["dim"] for row in mine], values, marker="o", label=name)
    dims = sorted({row["dim"] for row in rows if row["embedding"] != "identity"})
    if dims:
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(dim) for dim in dims])
        ax.minorticks_off()
    ax.set_xlabel("embedding dimension k")
    ax.set_ylabel(metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP"))
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "Decoding ceiling: ideal targets decoded, validation split")
    return ax


def plot_threshold_sweep(sweep, *, chosen: float | None = None, ax=None, title: str | None = None):
    """Micro precision, recall and F1 against the threshold (from :func:`workbench.evaluation.calibration.threshold_sweep`).

    Parameters
    ----------
    sweep : dict
        ``thresholds``, ``precision``, ``recall``, ``f1`` (arrays of one length).
    chosen : float, optional
        The calibrated threshold, marked with a vertical line.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    thresholds = np.asarray(sweep["thresholds"], dtype=np.float64)
    ax = _axes(ax)
    for name, style in (("precision", ":"), ("recall", "--"), ("f1", "-")):
        values = np.asarray(sweep[name], dtype=np.float64)
        if values.shape != thresholds.shape:
            raise ValueError(f"sweep[{name!r}] has shape {values.shape}; expected {thresholds.shape}.")
        ax.plot(thresholds, values, linestyle=style, label="F1" if name == "f1" else name)
    if chosen is not None:
        ax.axvline(chosen, color="grey", linewidth=1, label=f"calibrated threshold {chosen:.2f}")
    ax.set_xlabel("threshold (score at or above it = a label)")
    ax.set_ylabel("micro average")
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(title or "Precision, recall and F1 against the threshold")
    return ax


def plot_history(history, *, metric: str = "map_at_100", ax=None, label: str | None = None, title: str | None = None):
    """One metric of one run against epochs (the records of ``history.json``).

    Parameters
    ----------
    history : sequence of dict
        ``{"epoch": int, metric: float, …}`` per epoch; records without the metric are skipped.
    metric : str, default="map_at_100"
    ax : matplotlib Axes, optional
    label : str, optional
        Legend entry of the line.

    Returns
    -------
    matplotlib.axes.Axes
        The curve is ``ax.lines[-1]``.
    """
    points = [(int(r["epoch"]), float(r[metric])) for r in history if r.get(metric) is not None]
    ax = _axes(ax)
    epochs = [p[0] for p in points]
    values = [p[1] for p in points]
    ax.plot(epochs, values, marker="o", markersize=4, label=label)
    name = metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP").replace("_", " ")
    ax.set_xlabel("epoch")
    ax.set_ylabel(name if metric == "loss" else f"validation {name}")
    if epochs:
        ax.set_xticks(sorted(set(epochs)) if len(set(epochs)) <= 12 else ax.get_xticks())
    ax.set_title(title or name)
    ax.grid(True, alpha=0.3)
    if label:
        ax.legend()
    return ax


# <<< section notebooks


def plot_experiment(results, *, num_labels: int | None = None, metric: str = "map_at_100", ax=None,
                    title: str | None = None):
    """An experiment's final MAP@100 against ``k``: per head, the mean over seeds with each seed's point.

    Each head's line is the mean over seeds of the runs' final values (the mean of their
    last 3 epochs); the band is the mean of the runs' 95 % bootstrap intervals over
    validation images; small dots are the seeds. Heads without ``k`` (sigmoid; identity,
    whose ``k`` is C) are horizontal lines, and each embedding's decoding ceiling is dotted.

    Parameters
    ----------
    results : dict
        From :func:`workbench.experiments.experiment.run_experiment` (or ``results.json``).
    num_labels : int, optional
        The rows with this many labels (default: the first label count in the rows).
    metric : {"map_at_100", "macro_ap"}, default="map_at_100"
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    rows = results["rows"]
    if num_labels is None and rows:
        num_labels = rows[0]["num_labels"]
    rows = [row for row in rows if row["num_labels"] == num_labels and row.get(metric) is not None]
    colours = HEAD_COLOURS
    dims = sorted({row["dim"] for row in rows if row["head"] in K_HEADS and row["dim"] is not None})
    for head in dict.fromkeys(row["head"] for row in rows):
        mine = [row for row in rows if row["head"] == head]
        colour = colours.get(head, "C7")
        if head in K_HEADS and dims:
            by_dim = {dim: [row for row in mine if row["dim"] == dim] for dim in dims}
            xs = [dim for dim in dims if by_dim[dim]]
            means = [np.mean([row[metric] for row in by_dim[dim]]) for dim in xs]
            ax.plot(xs, means, marker="o", color=colour, label=f"{head} (mean of {len(by_dim[xs[0]])} seeds)")
            if metric == "map_at_100" and all(row["map_at_100_low"] is not None for row in mine):
                ax.fill_between(xs, [np.mean([row["map_at_100_low"] for row in by_dim[dim]]) for dim in xs],
                                [np.mean([row["map_at_100_high"] for row in by_dim[dim]]) for dim in xs],
                                color=colour, alpha=0.15, linewidth=0)
            for dim in xs:
                ax.scatter([dim] * len(by_dim[dim]), [row[metric] for row in by_dim[dim]], s=8, color=colour, alpha=0.6)
            ceilings = [by_dim[dim][0].get("ceiling_map_at_100") for dim in xs]
            if metric == "map_at_100" and all(value is not None for value in ceilings):
                ax.plot(xs, ceilings, linestyle=":", color=colour, label=f"{head} ceiling")
        else:
            mean = float(np.mean([row[metric] for row in mine]))
            ax.axhline(mean, color=colour, linestyle="--", linewidth=1.2,
                       label=f"{head} (mean of {len(mine)} seeds{', k = C' if head == 'identity' else ''})")
    if dims:
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(dim) for dim in dims])
        ax.minorticks_off()
    ax.set_xlabel("embedding dimension k")
    ax.set_ylabel(f"final {metric.replace('map_at_', 'MAP@').replace('macro_ap', 'macro AP')} (mean of last 3 epochs)")
    ax.set_ylim(0, 1.05)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    ax.set_title(title or f"{num_labels} labels: band = mean 95% bootstrap interval over validation images")
    return ax


def plot_experiment_curves(results, *, cells, metric: str = "map_at_100", x: str = "epoch", ax=None,
                           title: str | None = None):
    """Every seed's validation curve (thin) and the mean over seeds (thick), per head, against epochs or seconds.

    Parameters
    ----------
    results : dict
        From :func:`workbench.experiments.experiment.run_experiment` (``results.json``).
    cells : sequence of str
        The cells whose runs are drawn (for example a ``dim-16`` cell and the
        ``no-embedding`` cell of the same data).
    x : {"epoch", "seconds"}, default="epoch"
        Against epochs, or against cumulative training wall-clock seconds (each seed's
        own clock; the mean curve is drawn at the seeds' mean times).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if x not in ("epoch", "seconds"):
        raise ValueError(f"x must be 'epoch' or 'seconds'; got {x!r}.")
    ax = _axes(ax)
    colours = HEAD_COLOURS
    groups: dict = {}
    for run in results["histories"]:
        if run["cell"] in cells:
            groups.setdefault(run["head"], []).append(run["history"])
    for head, histories in groups.items():
        colour = colours.get(head, "C7")
        length = min(len(history) for history in histories)
        values = np.array([[np.nan if r.get(metric) is None else r[metric] for r in h[:length]] for h in histories])
        if x == "epoch":
            positions = np.tile(np.arange(1, length + 1), (len(histories), 1))
        else:
            positions = np.array([np.cumsum([r.get("seconds", 0.0) for r in h[:length]]) for h in histories])
        for row in range(len(histories)):
            ax.plot(positions[row], values[row], color=colour, linewidth=0.7, alpha=0.45)
        ax.plot(positions.mean(axis=0), np.nanmean(values, axis=0), color=colour, linewidth=2,
                label=f"{head} (mean of {len(histories)} seeds)")
    name = metric.replace("map_at_", "MAP@").replace("macro_ap", "macro AP")
    ax.set_xlabel("epoch" if x == "epoch" else "training wall-clock seconds")
    ax.set_ylabel(f"validation {name}")
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(fontsize="small")
    ax.set_title(title or f"{name} per {'epoch' if x == 'epoch' else 'second'}: thin = one seed, thick = mean")
    return ax


def plot_label_ap_by_frequency(results, *, cells, ax=None, bins: int = 6, title: str | None = None):
    """Each label's AP (mean over seeds) against its training frequency, per head, with binned means.

    Parameters
    ----------
    results : dict
        ``results.json`` of an experiment (its ``per_label`` entries).
    cells : sequence of str
        The cells drawn (one data set: the same labels and counts).
    bins : int, default=6
        Logarithmic frequency bins of the mean lines.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    colours = HEAD_COLOURS
    entries = [entry for entry in results.get("per_label", []) if entry["cell"] in cells]
    for entry in entries:
        colour = colours.get(entry["head"], "C7")
        counts = np.asarray(entry["train_counts"], dtype=np.float64)
        values = np.array([np.nan if value is None else value for value in entry["per_label_ap"]])
        keep = (counts > 0) & ~np.isnan(values)
        ax.scatter(counts[keep], values[keep], s=6, alpha=0.3, color=colour)
        edges = np.geomspace(counts[keep].min(), counts[keep].max() * 1.0001, _checks.integer(bins, "bins") + 1)
        which = np.digitize(counts[keep], edges) - 1
        centres, means = [], []
        for position in range(len(edges) - 1):
            members = values[keep][which == position]
            if len(members):
                centres.append(np.sqrt(edges[position] * edges[position + 1]))
                means.append(members.mean())
        ax.plot(centres, means, marker="o", color=colour, label=f"{entry['head']} ({entry['cell']})")
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("training images with the label")
    ax.set_ylabel("average precision of the label (validation)")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if entries:
        ax.legend(fontsize="small")
    ax.set_title(title or "Per-label AP against label frequency (lines: binned means)")
    return ax
