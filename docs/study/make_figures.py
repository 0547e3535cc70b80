"""The study's figures from an experiment folder (docs/study.md shows them).

    .venv/bin/python docs/study/make_figures.py results/study

Writes into docs/study/: map_against_k.png (final MAP@100 against k per label count, each head's
seeds and the decoding ceilings), curves.png (MAP@100 against epochs and training seconds at the
middle k), per_label_ap.png (per-label AP against training frequency) and errors.png (the pmi head's
most confident false positives). Each figure is drawn from the experiment's results.json; one whose
data the folder lacks (a published study keeps no per-label analyses) is skipped with a message. The
tables and every sentence are docs/study/write_study.py's (from results.csv and comparisons.csv).
"""

from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from workbench.apps import plot  # noqa: E402
from workbench.experiments.results import read_results  # noqa: E402
from workbench.method.targets import K_HEADS  # noqa: E402


def _middle_cells(results: dict, num_labels: int, middle: int) -> list[str]:
    """The cells at ``num_labels`` with the middle k, and the cell of heads without k."""
    return sorted({row["cell"] for row in results["rows"] if row["num_labels"] == num_labels
                   and (row["dim"] == middle or row["head"] not in K_HEADS)})


def error_gallery(results: dict, cell: str, head: str, out: Path) -> None:
    """The first seed's most confident false positives of ``head`` in ``cell``, on their images."""
    from workbench.data.scenes import generate_scenes
    from workbench.experiments.grid import Cell

    entry = next(item for item in results["per_label"] if item["cell"] == cell and item["head"] == head)
    data = Cell.from_settings(results["cells"][cell]["settings"]).data
    dataset = generate_scenes(num_images=data["images"], num_labels=data["labels"], image_size=data["size"],
                              missing_rate=data["missing_rate"], spurious_rate=data["spurious_rate"],
                              random_state=data["seed"])
    _, validation = dataset.split(validation_fraction=data["validation_fraction"], random_state=0)
    errors = entry["errors"][:12]
    images = [validation.images[error["image"]] for error in errors]
    titles = [f"true: {', '.join(error['true'][:3])}\nwrong: {error['wrong']}"
              + (f"\n(companion of {error['companion_of']})" if error["companion_of"] else "\n") for error in errors]
    ax = plot.plot_image_grid(images, titles=titles, columns=6,
                              title=f"{head} head, {cell}: most confident false positives "
                              f"({entry['companion_share_top']:.0%} companions; by chance "
                              f"{entry['companion_share_chance']:.0%})")
    plot.save_figure(ax, out, dpi=110)
    plt.close(ax.figure)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    source = Path(argv[0] if argv else "results/study")
    results = read_results(source)
    if "comparisons" not in results:
        raise SystemExit(f"{source}/results.json was written before comparisons were kept; run 'workbench experiment' "
                         f"on the same grid and folder again (finished cells are skipped).")
    label_counts = sorted({row["num_labels"] for row in results["rows"]})
    written = []

    figure, axes = plt.subplots(1, len(label_counts), figsize=(6.5 * len(label_counts), 4.6), squeeze=False)
    for ax, num_labels in zip(axes[0], label_counts):
        plot.plot_experiment(results, num_labels=num_labels, ax=ax,
                             title=f"{num_labels} labels: final MAP@100 against k (band: mean 95% interval over images)")
    figure.tight_layout()
    plot.save_figure(figure, HERE / "map_against_k.png", dpi=110)
    plt.close(figure)
    written.append("map_against_k.png")

    dims = sorted({row["dim"] for row in results["rows"] if row["head"] in K_HEADS and row["dim"] is not None})
    middle = dims[len(dims) // 2] if dims else None
    if results.get("histories"):
        figure, axes = plt.subplots(len(label_counts), 2, figsize=(13, 4.2 * len(label_counts)), squeeze=False)
        for row_axes, num_labels in zip(axes, label_counts):
            cells = _middle_cells(results, num_labels, middle)
            plot.plot_experiment_curves(results, cells=cells, ax=row_axes[0],
                                        title=f"{num_labels} labels, k = {middle}: MAP@100 per epoch (thin: seeds)")
            plot.plot_experiment_curves(results, cells=cells, x="seconds", ax=row_axes[1],
                                        title=f"{num_labels} labels, k = {middle}: against training seconds")
        figure.tight_layout()
        plot.save_figure(figure, HERE / "curves.png", dpi=110)
        plt.close(figure)
        written.append("curves.png")
    else:
        print(f"{source}: no learning curves (histories); curves.png left as it is")

    if results.get("per_label"):
        figure, axes = plt.subplots(1, len(label_counts), figsize=(6.5 * len(label_counts), 4.6), squeeze=False)
        for ax, num_labels in zip(axes[0], label_counts):
            plot.plot_label_ap_by_frequency(results, cells=_middle_cells(results, num_labels, middle), ax=ax,
                                            title=f"{num_labels} labels, k = {middle}: per-label AP against frequency")
        figure.tight_layout()
        plot.save_figure(figure, HERE / "per_label_ap.png", dpi=110)
        plt.close(figure)
        written.append("per_label_ap.png")
        pmi_cells = sorted({row["cell"] for row in results["rows"] if row["head"] == "pmi" and row["dim"] == middle})
        if pmi_cells and any(item["cell"] == pmi_cells[0] and item["head"] == "pmi" for item in results["per_label"]):
            error_gallery(results, pmi_cells[0], "pmi", HERE / "errors.png")
            written.append("errors.png")
    else:
        print(f"{source}: no per-label analyses; per_label_ap.png and errors.png left as they are")
    print(f"wrote {', '.join(written)} into {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
