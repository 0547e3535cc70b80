"""What the label explorer shows as HTML: the neighbour tables and the static picture of its map.

:func:`neighbour_tables_html` draws a label's nearest labels by cosine beside its highest-PMI
labels; :func:`static_map_html` is the map as a PNG with an HTML image map (a hover name per
point, up to a limit), which stands in for the WebGL widget where no kernel runs. Every name
is HTML-escaped (label and file names come from users).
"""

from __future__ import annotations

import base64
import html
import io
import itertools
import math

import numpy as np

__all__ = ["neighbour_tables_html", "static_map_figure", "static_map_html"]

_map_ids = itertools.count(1)


def _escape(text) -> str:
    return html.escape(str(text), quote=True)


def _number(value, key: str) -> str:
    if value is None:
        return "—"
    if key in ("cooccurrences", "label_count"):
        return str(int(value))
    if not math.isfinite(value):
        return "−∞" if value < 0 else "∞"
    return f"{value:.2f}" if key == "pmi" else f"{value:.3f}"


def _table(rows: list[dict], caption: str, columns: list[tuple[str, str]]) -> str:
    head = "<tr><th>#</th><th>label</th>" + "".join(f"<th>{name}</th>" for _, name in columns) + "</tr>"
    body = []
    for rank, row in enumerate(rows, start=1):
        cells = f"<td>{rank}</td><td>{_escape(row['label'])}</td>"
        cells += "".join(f"<td>{_number(row[key], key)}</td>" for key, _ in columns)
        body.append(f"<tr>{cells}</tr>")
    if not rows:
        body.append(f'<tr><td colspan="{2 + len(columns)}"><i>none</i></td></tr>')
    return f'<div class="workbench-table-caption"><i>{_escape(caption)}</i></div><table>{head}{"".join(body)}</table>'


def neighbour_tables_html(label: str, rows: list[dict], pmi_rows: list[dict] | None, *, own: str = "",
                          counts: bool = False, label_counts: bool = False, pmi_caption: str = "highest PMI") -> str:
    """The chosen ``label`` with its nearest labels by cosine (``rows``) beside its highest-PMI ones (``pmi_rows``).

    Parameters
    ----------
    label : str
    rows, pmi_rows : list of dict
        ``label, similarity, pmi, cooccurrences, label_count`` each (``LabelExplorer.neighbours``);
        ``pmi_rows`` None: no PMI (no PMI column, no second table).
    own : str
        Text after the label's name (how many images carry it).
    counts, label_counts : bool
        Show the ``together`` and ``images`` columns.
    pmi_caption : str
        Caption of the PMI table.
    """
    extra = ([("cooccurrences", "together")] if counts else []) + ([("label_count", "images")] if label_counts else [])
    cosine_first = [("similarity", "cosine")] + ([("pmi", "PMI")] if pmi_rows is not None else [])
    tables = [_table(rows, "nearest by embedding cosine", cosine_first + extra)]
    if pmi_rows is not None:
        tables.append(_table(pmi_rows, pmi_caption, [("pmi", "PMI"), ("similarity", "cosine")] + extra))
    style = ("<style>.workbench-neighbours td,.workbench-neighbours th{padding:1px 6px;text-align:right}"
             ".workbench-neighbours td:nth-child(2){text-align:left}</style>")
    cells = "".join(f'<td style="vertical-align:top;padding-right:24px">{table}</td>' for table in tables)
    return f'{style}<div><b class="workbench-chosen">{_escape(label)}</b>{_escape(own)}</div><table><tr>{cells}</tr></table>'


def static_map_figure(coordinates, *, labels, groups=None, chosen: int, highlight: list[int], title: str,
                      image_coordinates=None, figure_size=(7.0, 6.0), dpi: int = 100):
    """The map as a matplotlib figure (no display needed): :func:`~workbench.apps.plot.plot_label_map`, images as crosses.

    Returns ``(figure, ax)``, drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from workbench.apps.plot import plot_label_map

    figure = Figure(figsize=figure_size, dpi=dpi)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    legend = groups is not None and len(set(groups)) <= 14  # the picture's palette has 14 colours
    plot_label_map(coordinates, labels=labels, groups=groups, chosen=chosen, highlight=highlight, ax=ax, legend=legend,
                   title=title)
    if image_coordinates is not None and len(image_coordinates):
        points = np.asarray(image_coordinates)
        ax.scatter(points[:, 0], points[:, 1], s=6, c="#666666", marker="x", linewidths=0.5, zorder=2)
    figure.tight_layout()
    figure.canvas.draw()
    return figure, ax


def static_map_html(coordinates, *, labels, groups=None, chosen: int, highlight: list[int], title: str,
                    image_coordinates=None, hover_limit: int = 2000, figure_size=(7.0, 6.0)) -> str:
    """:func:`static_map_figure` as an ``<img>`` with an image map: a hover name (and group) for up to ``hover_limit`` labels.

    The chosen label and ``highlight`` come first, so they win where points overlap.
    """
    dpi = 100
    figure, ax = static_map_figure(coordinates, labels=labels, groups=groups, chosen=chosen, highlight=highlight,
                                   title=title, image_coordinates=image_coordinates, figure_size=figure_size, dpi=dpi)
    width, height = figure.canvas.get_width_height()
    pixels = ax.transData.transform(np.asarray(coordinates, dtype=np.float64))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    marked = set(highlight) | {chosen}
    order = list(highlight) + [chosen] + [i for i in range(len(labels)) if i not in marked]
    areas = []
    for i in order[: max(int(hover_limit), len(highlight) + 1)]:
        x, y = pixels[i]
        if not (0 <= x <= width and 0 <= y <= height):
            continue
        group = groups[i] if groups is not None else ""
        tip = _escape(f"{labels[i]} ({group})" if group else labels[i])
        radius = 6 if i in marked else 4
        areas.append(f'<area shape="circle" coords="{x:.0f},{height - y:.0f},{radius}" title="{tip}" alt="{tip}">')
    map_id = f"workbench-map-{next(_map_ids)}"
    return (
        f'<div class="workbench-static-map"><img src="data:image/png;base64,{encoded}" usemap="#{map_id}" '
        f'width="{width}" height="{height}" alt="label map">'
        f'<map name="{map_id}">{"".join(areas)}</map>'
        f'<div style="color:#666;font-size:85%">A static picture of the label explorer (run the notebook for the '
        f'interactive map).</div></div>'
    )
