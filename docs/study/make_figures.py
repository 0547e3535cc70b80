"""The study's figures and tables from an experiment folder (docs/study.md shows them).

    .venv/bin/python docs/study/make_figures.py results/study

Writes into docs/study/: results.csv (the experiment's rows), summary.md (per label count and k:
MAP@100 mean ± std over seeds for every head, the mean bootstrap interval, the ceilings, the paired
pmi − random test), and the figures map_against_k.png, curves.png, per_label_ap.png,
errors.png. Every number comes from the experiment's results.json.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from workbench.apps import plot  # noqa: E402
from workbench.experiments.results import read_results  # noqa: E402


def _mean_std(values) -> str:
    values = np.asarray([value for value in values if value is not None], dtype=np.float64)
    if not len(values):
        return "—"
    return f"{values.mean():.3f} ± {values.std(ddof=1) if len(values) > 1 else 0:.3f}"


def summary_markdown(results: dict) -> str:
    rows, paired = results["rows"], {test["cell"]: test for test in results["paired"]}
    lines = []
    for num_labels in sorted({row["num_labels"] for row in rows}):
        mine = [row for row in rows if row["num_labels"] == num_labels]
        flat = {head: [row for row in mine if row["head"] == head] for head in ("identity", "sigmoid")}
        lines += [f"### {num_labels} labels", "",
                  "| k | pmi MAP@100 | random MAP@100 | pmi − random [95% interval], seeds won | pmi ceiling | random ceiling |",
                  "|---|---|---|---|---|---|"]
        for dim in sorted({row["dim"] for row in mine if row["head"] in ("pmi", "random")}):
            pmi = [row for row in mine if row["head"] == "pmi" and row["dim"] == dim]
            random = [row for row in mine if row["head"] == "random" and row["dim"] == dim]
            test = paired.get(pmi[0]["cell"]) if pmi else None
            achieved = pmi[0]["dim_achieved"] if pmi else dim
            label = f"{dim}" + (f" (achieved {achieved})" if achieved != dim else "")
            verdict = "—"
            if test:
                word = {True: "**pmi better**", False: "**random better**", None: "no difference"}[test["beats"]]
                verdict = (f"{test['difference']:+.3f} [{test['low']:+.3f}, {test['high']:+.3f}], "
                           f"{test['wins']}/{test['num_seeds']}: {word}")
            lines.append(f"| {label} | {_mean_std(r['map_at_100'] for r in pmi)} | "
                         f"{_mean_std(r['map_at_100'] for r in random)} | {verdict} | "
                         f"{pmi[0]['ceiling_map_at_100']:.3f} | {random[0]['ceiling_map_at_100']:.3f} |"
                         if pmi and random else f"| {label} | — | — | — | — | — |")
        lines.append("")
        for head, head_rows in flat.items():
            if head_rows:
                interval = (f"[{np.mean([r['map_at_100_low'] for r in head_rows]):.3f}, "
                            f"{np.mean([r['map_at_100_high'] for r in head_rows]):.3f}]")
                ceiling = head_rows[0]["ceiling_map_at_100"]
                lines.append(f"- {head}: MAP@100 {_mean_std(r['map_at_100'] for r in head_rows)} (mean interval "
                             f"{interval}; macro AP {_mean_std(r['macro_ap'] for r in head_rows)})"
                             + (f", ceiling {ceiling:.3f}" if ceiling is not None else ""))
        lines.append("")
    return "\n".join(lines)


def error_gallery(results: dict, cell: str, head: str, out: Path) -> None:
    """The first seed's most confident false positives of ``head`` in ``cell``, on their images."""
    from workbench.data.scenes import generate_scenes
    from workbench.experiments.grid import Cell

    entry = next(item for item in results["per_label"] if item["cell"] == cell and item["head"] == head)
    settings = results["cells"][cell]["settings"]
    data = Cell.from_settings(settings).data
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
    shutil.copyfile(source / "results.csv", HERE / "results.csv")
    (HERE / "summary.md").write_text(summary_markdown(results) + "\n", encoding="utf-8")
    label_counts = sorted({row["num_labels"] for row in results["rows"]})

    figure, axes = plt.subplots(1, len(label_counts), figsize=(6.5 * len(label_counts), 4.6), squeeze=False)
    for ax, num_labels in zip(axes[0], label_counts):
        plot.plot_experiment(results, num_labels=num_labels, ax=ax,
                             title=f"{num_labels} labels: final MAP@100 against k (band: mean 95% interval)")
    figure.tight_layout()
    plot.save_figure(figure, HERE / "map_against_k.png", dpi=110)
    plt.close(figure)

    dims = sorted({row["dim"] for row in results["rows"] if row["head"] == "pmi"})
    middle = dims[len(dims) // 2] if dims else None
    figure, axes = plt.subplots(len(label_counts), 2, figsize=(13, 4.2 * len(label_counts)), squeeze=False)
    for row_axes, num_labels in zip(axes, label_counts):
        cells = sorted({row["cell"] for row in results["rows"] if row["num_labels"] == num_labels
                        and (row["dim"] == middle or row["head"] in ("identity", "sigmoid"))})
        plot.plot_experiment_curves(results, cells=cells, ax=row_axes[0],
                                    title=f"{num_labels} labels, k = {middle}: MAP@100 per epoch (thin: seeds)")
        plot.plot_experiment_curves(results, cells=cells, x="seconds", ax=row_axes[1],
                                    title=f"{num_labels} labels, k = {middle}: against training seconds")
    figure.tight_layout()
    plot.save_figure(figure, HERE / "curves.png", dpi=110)
    plt.close(figure)

    figure, axes = plt.subplots(1, len(label_counts), figsize=(6.5 * len(label_counts), 4.6), squeeze=False)
    for ax, num_labels in zip(axes[0], label_counts) if results["per_label"] else ():
        cells = sorted({row["cell"] for row in results["rows"] if row["num_labels"] == num_labels
                        and (row["dim"] == middle or row["head"] in ("identity", "sigmoid"))})
        plot.plot_label_ap_by_frequency(results, cells=cells, ax=ax,
                                        title=f"{num_labels} labels, k = {middle}: per-label AP against frequency")
    figure.tight_layout()
    plot.save_figure(figure, HERE / "per_label_ap.png", dpi=110)
    plt.close(figure)

    pmi_cells = sorted({row["cell"] for row in results["rows"] if row["head"] == "pmi" and row["dim"] == middle})
    if pmi_cells and any(item["cell"] == pmi_cells[0] for item in results["per_label"]):
        error_gallery(results, pmi_cells[0], "pmi", HERE / "errors.png")
    print(f"wrote {', '.join(sorted(path.name for path in HERE.glob('*') if path.suffix in ('.png', '.md', '.csv')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
