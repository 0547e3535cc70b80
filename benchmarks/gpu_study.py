"""The full-size study grid on a GPU: a dry copy of it for the CPU, and how far a run of it has come.

``benchmarks/gpu_check.sh`` runs ``docs/study/grid-full.toml`` for its time limit with
``workbench experiment`` (which resumes: finished cells are skipped, unfinished runs go on after
their last epoch). This script is its helper:

``dry-grid FULL.toml OUT.toml``
    writes a copy of the grid with every key kept and the sizes cut down (:data:`DRY`), so that
    ``gpu_check.sh --dry`` runs the same kind of grid to the end on a CPU in a minute or two;
``progress OUT_DIR GRID.toml [--images-per-second R]``
    prints how many of the grid's cells are finished, unfinished or not started, the image-epochs of
    training the whole grid holds at most (every run of every cell: its epochs, the cap, × training
    images; the learning-rate tuning: 3 rates or more per head and cell, each trained as the cell's runs
    on the training split less its hold-out; :func:`work`) and, given the measured training rate, the
    hours they take at it (training only: evaluation and data generation are not counted).

    python benchmarks/gpu_study.py dry-grid docs/study/grid-full.toml OUT/grid-dry.toml
    python benchmarks/gpu_study.py progress OUT/study docs/study/grid-full.toml --images-per-second 20000
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: What the dry copy changes: small data, two k, one seed, two epochs, a small trunk, no tuning.
DRY = {"data": {"labels": 30, "images": 160, "size": 16}, "embedding": {"dim": [4, 8]},
       "train": {"seeds": [0], "epochs": 2, "image_size": 16, "batch_size": 32, "width": 4, "depth": 2, "tune_lr": False}}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    raise ValueError(f"cannot write {value!r} as a TOML value")


def toml_text(grid: dict) -> str:
    """A grid (tables of scalars and lists, ``[train.learning_rates]`` included) as TOML text."""
    lines = []
    for section, table in grid.items():
        lines.append(f"[{section}]")
        nested = {key: value for key, value in table.items() if isinstance(value, dict)}
        lines += [f"{key} = {_toml_value(value)}" for key, value in table.items() if key not in nested]
        for key, value in nested.items():
            lines.append(f"[{section}.{key}]")
            lines += [f'"{name}" = {_toml_value(item)}' for name, item in value.items()]
        lines.append("")
    return "\n".join(lines)


def dry_grid(full: dict) -> dict:
    """``full`` with :data:`DRY` applied (every other key kept)."""
    return {section: {**table, **DRY.get(section, {})} for section, table in full.items()}


def work(cells, *, images_of) -> dict:
    """Image-epochs of training in ``cells``, at most: the runs, and the learning-rate tuning where it is on.

    Every run counts its cell's ``epochs`` (the cap: a stopping rule may end it sooner). A cell with
    ``tune_lr`` tunes each head with :data:`TUNING_FACTORS` rates at least (more when the best rate is at
    an edge), each trained as the cell's runs on the training split less its hold-out.
    """
    from workbench.experiments.experiment import TUNING_FACTORS

    runs = tuning = 0
    for cell in cells:
        num_train = images_of(cell)
        runs += len(cell.heads) * len(cell.seeds) * cell.train["epochs"] * num_train
        if cell.train.get("tune_lr"):
            holdout = cell.train.get("holdout_fraction", cell.data["validation_fraction"])
            inner = num_train - round(holdout * num_train)
            tuning += len(cell.heads) * len(TUNING_FACTORS) * cell.train["epochs"] * inner
    return {"runs": runs, "tuning": tuning, "total": runs + tuning}


def progress(out_dir: Path, grid_path: Path, images_per_second: float | None) -> str:
    from workbench.experiments.experiment import cell_state
    from workbench.experiments.grid import expand_cells, read_grid

    grid = read_grid(grid_path)
    cells = expand_cells(grid)
    states = {}
    for cell in cells:
        try:
            states[cell.name] = cell_state(out_dir, cell)
        except ValueError:
            states[cell.name] = "other settings"
    counts = {state: sum(value == state for value in states.values()) for state in ("finished", "unfinished", "new",
                                                                                    "other settings")}

    def images_of(cell):
        if cell.data.get("path"):
            raise ValueError("progress counts generated scenes only; this grid reads a data set from disk.")
        return cell.data["images"] - round(cell.data["validation_fraction"] * cell.data["images"])

    total = work(cells, images_of=images_of)
    left = work([cell for cell in cells if states[cell.name] != "finished"], images_of=images_of)
    lines = [f"study grid {grid_path}: {len(cells)} cells, {counts['finished']} finished, {counts['unfinished']} unfinished, "
             f"{counts['new']} not started" + (f", {counts['other settings']} with other settings" if counts["other settings"] else ""),
             f"training in the whole grid: {total['total']:,} image-epochs ({total['runs']:,} in runs, {total['tuning']:,} in "
             f"tuning); left in cells not finished: {left['total']:,}"]
    if images_per_second:
        lines.append(f"at {images_per_second:,.0f} training images/s: {total['total'] / images_per_second / 3600:.1f} h for the "
                     f"whole grid, {left['total'] / images_per_second / 3600:.1f} h left (training only)")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dry = commands.add_parser("dry-grid", help="write a cut-down copy of a grid")
    dry.add_argument("full", type=Path)
    dry.add_argument("out", type=Path)
    report = commands.add_parser("progress", help="cells finished and the training the grid holds")
    report.add_argument("out_dir", type=Path)
    report.add_argument("grid", type=Path)
    report.add_argument("--images-per-second", type=float, default=None)
    args = parser.parse_args(argv)
    if args.command == "dry-grid":
        args.out.write_text(toml_text(dry_grid(tomllib.loads(args.full.read_text(encoding="utf-8")))), encoding="utf-8")
        return 0
    print(progress(args.out_dir, args.grid, args.images_per_second))
    return 0


if __name__ == "__main__":
    sys.exit(main())
