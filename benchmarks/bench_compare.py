"""The head comparison on emoji scenes: pmi vs sigmoid vs random, several seeds, label noise on.

Generates an emoji-scenes data set in memory (``--labels`` ≥ 500 labels, missing and
spurious labels on), then runs :func:`workbench.experiments.compare.compare`: one
train/validation split, the PMI embedding from the training split only, the same
trunk, epochs and batch size for every head, ``--seeds`` seeds each. Writes
``OUT/results.json``, ``OUT/comparison_curves.png``, ``OUT/table.txt`` and one run folder
per head and seed, and prints the table (final MAP@100 per head, mean ± std over
seeds, and the epochs each head needs to reach the sigmoid head's final MAP@100).
Runs resume: start the same command again after an interruption.

Learning-rate sweep (``--sweep``): the same comparison with one seed and
``--sweep-epochs`` epochs, once per rate in ``--sweep-rates`` with that rate for
EVERY head (the same budget per head), then the best rate of each head by final
validation MAP@100. :data:`workbench.learning.config.DEFAULT_LEARNING_RATES` holds its
result. Writes ``OUT/sweep.json``.

    .venv/bin/python benchmarks/bench_compare.py --images 3000 --labels 500 --epochs 8 --seeds 3 --out benchmarks/results/compare_full
    .venv/bin/python benchmarks/bench_compare.py --sweep --images 2000 --labels 500 --sweep-epochs 4 --out benchmarks/results/sweep
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _write_report(results: dict, out: Path) -> str:
    import matplotlib.pyplot as plt

    from workbench._io import atomic_write_text
    from workbench.apps.plot import plot_comparison_curves, save_figure
    from workbench.experiments.results import comparison_table

    ax = plot_comparison_curves(results)
    save_figure(ax, out / "comparison_curves.png")
    plt.close(ax.figure)
    table = comparison_table(results)
    atomic_write_text(out / "table.txt", table + "\n")
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--labels", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--missing-rate", type=float, default=0.1, help="share of drawn glyphs left unlabelled")
    parser.add_argument("--spurious-rate", type=float, default=0.05, help="chance per glyph of an extra wrong label")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--heads", default="pmi,sigmoid,random")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sweep", action="store_true", help="run the learning-rate sweep instead")
    parser.add_argument("--sweep-rates", default="3e-4,1e-3,3e-3,1e-2")
    parser.add_argument("--sweep-epochs", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/compare")
    args = parser.parse_args(argv)
    if args.labels < 500 and not args.sweep:
        print(f"note: --labels {args.labels} is below the 500 labels of the reference comparison", file=sys.stderr)

    from workbench._io import atomic_write_json
    from workbench.learning.models import ModelConfig
    from workbench.data.scenes import generate_scenes
    from workbench.experiments.compare import compare
    from workbench.learning.devices import describe_device
    from workbench.experiments.results import summarize_comparison

    began = time.perf_counter()
    dataset = generate_scenes(
        num_images=args.images,
        num_labels=args.labels,
        image_size=args.image_size,
        missing_rate=args.missing_rate,
        spurious_rate=args.spurious_rate,
        random_state=args.data_seed,
    )
    print(f"{describe_device()}\n{dataset.summary()}  ({time.perf_counter() - began:.0f} s to generate)", flush=True)
    heads = [head.strip() for head in args.heads.split(",") if head.strip()]
    model = ModelConfig(image_size=args.image_size, width=args.width, depth=args.depth)
    out = Path(args.out)
    # The PMI embedding of the training split, computed once for every comparison below.
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    train_set, _ = dataset.split(validation_fraction=args.validation_fraction, random_state=0)
    embedding = embed_labels(count_cooccurrence(train_set.labels, train_set.vocabulary), embedding_dim=args.dim)
    common = dict(
        heads=heads,
        embedding=embedding,
        batch_size=args.batch_size,
        model=model,
        validation_fraction=args.validation_fraction,
        workers=args.workers,
    )

    if args.sweep:
        rates = [float(rate) for rate in args.sweep_rates.split(",")]
        finals: dict[str, dict[str, float]] = {head: {} for head in heads}
        for rate in rates:
            print(f"\n=== learning rate {rate:g} for every head ===", flush=True)
            results = compare(
                dataset, out_dir=out / f"lr{rate:g}", epochs=args.sweep_epochs, seeds=(0,),
                learning_rates={head: rate for head in heads}, **common,
            )
            for head, values in summarize_comparison(results).items():
                finals[head][f"{rate:g}"] = values["final_mean"]
        best = {head: float(max(values, key=values.get)) for head, values in finals.items()}
        print("\nfinal validation MAP@100 after", args.sweep_epochs, "epochs (seed 0):")
        print("head      " + "  ".join(f"lr {rate:<8g}" for rate in rates) + "  best")
        for head in heads:
            cells = "  ".join(f"{finals[head][f'{rate:g}']:<11.4f}" for rate in rates)
            print(f"{head:<9} {cells}  {best[head]:g}")
        atomic_write_json(out / "sweep.json", {"epochs": args.sweep_epochs, "rates": rates, "final_map_at_100": finals, "best": best,
                                               "data": dataset.summary(), "device": describe_device()})
        print(f"\nwrote {out / 'sweep.json'} in {(time.perf_counter() - began) / 60:.1f} min")
        return 0

    results = compare(dataset, out_dir=out, epochs=args.epochs, seeds=range(args.seeds), **common)
    table = _write_report(results, out)
    print()
    print(table)
    print(f"\nwrote {out / 'results.json'}, {out / 'comparison_curves.png'}, {out / 'table.txt'} "
          f"in {(time.perf_counter() - began) / 60:.1f} min")
    print(json.dumps({head: round(v["final_mean"], 4) for head, v in summarize_comparison(results).items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
