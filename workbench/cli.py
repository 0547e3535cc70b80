"""The ``workbench`` command: argument parsing only; all work happens in the package.

Each subcommand has one section below: a ``_add_<name>(subparsers)`` function that
declares its arguments and a ``_run_<name>(args)`` function that calls the package.
Heavy modules (Keras above all) are imported inside ``_run_*`` so that
``workbench --help`` and the PMI commands start fast.

User errors (``ValueError``, ``FileNotFoundError``, ``KeyError`` raised for bad
input) are printed as one line, ``workbench <command>: error: …``, with exit status 2;
faults of the machine (``OSError``: a full disk, a read-only folder) likewise, with exit
status 4; never a traceback.

Why one module of about 600 lines: it is argument parsing only, one short section per
command; every choice list and help text comes from the package (heads, formats, PMI
policies, solvers, profiles, :class:`~workbench.method.embed.EmbeddingOptions`), so
nothing here is a second source of a setting.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench._io import check_output_folder

from workbench.learning.config import HEADS, OPTIMIZERS, SIGMOID_BIASES
from workbench.experiments.compare import DEFAULT_HEADS
from workbench.method.decoders import DECODERS
from workbench.method.embed import DEFAULT_EMBEDDING_DIM
from workbench.notebook.profiles import PROFILE_NAMES

__all__ = ["main", "build_parser"]


#: Exit status when some of the work failed and the rest was done (images not classified, cells that failed).
EXIT_SOME_FAILED = 1
#: ``workbench classify``'s exit status when the results were printed but could not be stored
#: (1: some images could not be classified; 2: bad usage or input).
EXIT_STORE_FAILED = 3
#: Exit status of any command stopped by the machine rather than its input (a full disk, an I/O error).
EXIT_SYSTEM_ERROR = 4


#: Commands that load Keras: TensorFlow's start-up notices are dropped as it is imported.
_KERAS_COMMANDS = {"train", "compare", "classify", "calibrate"}


class UserError(Exception):
    """Raised by a subcommand for a problem the user can fix; printed as one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="PMI label-embedding research workbench: data sets, PMI, spectral label embeddings, "
        "CNNs trained against cosine loss, and classification.",
    )
    from workbench import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        if args.command in _KERAS_COMMANDS:
            from workbench.learning.startup import import_keras_quietly

            import_keras_quietly()
        return int(args.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine, not the input: a full disk, a read-only folder, an I/O error
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        reason = error.strerror or str(error) or type(error).__name__
        print(f"workbench {args.command}: error: could not read or write{where} ({reason}); nothing was half-written, "
              "earlier files are intact: free disk space or check the folder's permissions, then run it again.",
              file=sys.stderr)
        return EXIT_SYSTEM_ERROR
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data DATASET [--format FORMAT]``, shared by every command that reads a data set."""
    parser.add_argument(
        "--data",
        required=required,
        metavar="DATASET",
        help="a data set: a folder written by 'workbench scenes', or a file/folder in any loader format",
    )
    from workbench.data.datasets import FORMATS

    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="format of --data (default: detected)")


def add_embedding_arguments(parser: argparse.ArgumentParser, *, seed_flag: str = "--seed") -> None:
    """Every PMI and spectral choice (:class:`workbench.method.embed.EmbeddingOptions`), for commands that embed.

    Names, defaults, choices and help all come from the package, so ``embed`` and
    ``compare`` offer the same options with the same defaults. ``seed_flag`` names the
    solver's seed (``--seed`` for ``embed``; ``--solver-seed`` where ``--seeds`` means training seeds).
    """
    from workbench.method.eigensolvers import NEGATIVE_POLICIES, SOLVERS
    from workbench.method.embed import OPTION_HELP, EmbeddingOptions
    from workbench.method.pmi import DIAGONALS, POLICIES

    defaults = EmbeddingOptions()
    group = parser.add_argument_group("label embedding (PMI and eigen-decomposition)")
    add = group.add_argument
    add("--dim", dest="embedding_dim", type=int, default=defaults.embedding_dim, metavar="K",
        help=f"{OPTION_HELP['embedding_dim']} (default: {defaults.embedding_dim})")
    add("--pmi", dest="policy", default=defaults.policy, choices=POLICIES, help=f"{OPTION_HELP['policy']} (default: {defaults.policy})")
    add("--diagonal", default=defaults.diagonal, choices=DIAGONALS, help=f"{OPTION_HELP['diagonal']} (default: {defaults.diagonal})")
    add("--clip-value", type=float, default=None, metavar="V", help=OPTION_HELP["clip_value"])
    add("--smoothing", type=float, default=None, metavar="A", help=OPTION_HELP["smoothing"])
    add("--context-exponent", type=float, default=defaults.context_exponent, metavar="E",
        help=f"{OPTION_HELP['context_exponent']} (default: {defaults.context_exponent:g})")
    add("--shift", type=float, default=defaults.shift, metavar="S", help=f"{OPTION_HELP['shift']} (default: {defaults.shift:g})")
    add("--negative", default=defaults.negative, choices=NEGATIVE_POLICIES, help=f"{OPTION_HELP['negative']} (default: {defaults.negative})")
    add("--solver", default=defaults.solver, choices=SOLVERS, help=f"{OPTION_HELP['solver']} (default: {defaults.solver})")
    add(seed_flag, dest="random_state", type=int, default=defaults.random_state, metavar="S",
        help=f"{OPTION_HELP['random_state']} (default: {defaults.random_state})")
    add("--tolerance", type=float, default=defaults.tolerance, metavar="T",
        help=f"{OPTION_HELP['tolerance']} (default: {defaults.tolerance:g})")


def embedding_options(args):
    """The :class:`~workbench.method.embed.EmbeddingOptions` of parsed :func:`add_embedding_arguments` flags."""
    from dataclasses import fields

    from workbench.method.embed import EmbeddingOptions

    return EmbeddingOptions(**{field.name: getattr(args, field.name) for field in fields(EmbeddingOptions)})


# ---------------------------------------------------------------------------------
# scenes (issue 2)
# ---------------------------------------------------------------------------------
# >>> section scenes
def _add_scenes(subparsers) -> None:
    parser = subparsers.add_parser(
        "scenes",
        help="generate the bundled emoji-scenes data set",
        description="Generate emoji scenes (images of Unicode emoji with their CLDR names as labels) and write "
        "DIR/images/*.png, DIR/labels.csv and DIR/vocabulary.csv.",
        epilog="Needs the Debian packages fonts-noto-color-emoji and unicode-data, or the environment variables "
        "WORKBENCH_EMOJI_FONT and WORKBENCH_EMOJI_TEST pointing at NotoColorEmoji.ttf and emoji-test.txt.",
    )
    parser.add_argument("--images", type=int, required=True, metavar="N", help="number of images")
    parser.add_argument(
        "--labels", type=int, default=None, metavar="C", help="number of labels (default: every emoji of the groups)"
    )
    parser.add_argument("--size", type=int, default=64, metavar="S", help="image side in pixels (default: 64)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    parser.add_argument("--min-labels", type=int, default=1, metavar="K", help="fewest glyphs per image (default: 1)")
    parser.add_argument("--max-labels", type=int, default=6, metavar="K", help="most glyphs per image (default: 6)")
    parser.add_argument(
        "--missing-rate", type=float, default=0.0, metavar="R", help="chance a drawn glyph is not labelled (default: 0)"
    )
    parser.add_argument(
        "--spurious-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="chance per glyph of an extra label without a glyph (default: 0)",
    )
    parser.add_argument(
        "--all-groups", action="store_true", help="use every Unicode emoji group, not only the object-like ones"
    )
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier scenes output)"
    )
    parser.set_defaults(run=_run_scenes)


def _run_scenes(args) -> int:
    import time

    from workbench.data.scenes import SceneConfig, SceneGenerator

    began = time.perf_counter()
    config = SceneConfig(
        num_images=args.images, num_labels=args.labels, image_size=args.size, min_labels=args.min_labels,
        max_labels=args.max_labels, missing_rate=args.missing_rate, spurious_rate=args.spurious_rate,
        groups="all" if args.all_groups else "objects", random_state=args.seed,
    )
    generator = SceneGenerator(config)
    summary = generator.write(args.out)
    skipped = f", {len(generator.skipped_emoji)} emoji skipped (not in the font)" if generator.skipped_emoji else ""
    print(
        f"wrote {summary['num_images']} images, {summary['num_labels']} labels, "
        f"{summary['mean_labels_per_image']:.2f} labels/image to {args.out} "
        f"in {time.perf_counter() - began:.1f} s{skipped}"
    )
    return 0


# <<< section scenes

# ---------------------------------------------------------------------------------
# embed, neighbours (issue 3)
# ---------------------------------------------------------------------------------
# >>> section embed
def _add_embed(subparsers) -> None:
    parser = subparsers.add_parser(
        "embed",
        help="PMI spectral label embedding from a data set or counts",
        description="Count label co-occurrences (or read counts), compute PMI and write a spectral label embedding "
        "DIR/embedding.npz + DIR/embedding.json.",
    )
    add_data_arguments(parser, required=False)
    parser.add_argument("--counts", metavar="COUNTS.json", help="co-occurrence counts JSON instead of --data")
    add_embedding_arguments(parser)
    parser.add_argument("--projector", action="store_true", help="also write DIR/projector/{vectors,metadata}.tsv")
    parser.add_argument("--save-counts", action="store_true", help="also write the counts as DIR/counts.json")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.set_defaults(run=_run_embed)


def _run_embed(args) -> int:
    import time
    import warnings
    from tqdm.auto import tqdm

    from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence
    from workbench.method.embed import embed_labels

    if (args.data is None) == (args.counts is None):
        raise UserError("give exactly one of --data DATASET or --counts COUNTS.json.")
    options = embedding_options(args)  # every bad option fails here, before any work
    empty_images = 0
    began = time.perf_counter()
    out = check_output_folder(args.out, marker="embedding.json", command="workbench embed",
                              differences=lambda folder: _embedding_differences(folder, options))
    for wanted, flag in (("projector", args.projector), ("counts.json", args.save_counts)):
        taken = out / wanted
        if flag and taken.exists() and (taken.is_dir() == (wanted == "counts.json")):
            raise UserError(f"{taken} is in the way ({'a folder' if taken.is_dir() else 'a file'}); move it or give another --out.")
    interactive = sys.stderr.isatty()  # progress bars on a terminal, not in logs and pipes
    steps = tqdm(total=4, desc="embed", unit="step", file=sys.stderr, leave=False, disable=not interactive)
    try:
        if args.counts is not None:
            steps.set_description("reading counts")
            counts = CooccurrenceCounts.load_json(args.counts)
        else:
            from workbench.data.datasets import load_dataset

            steps.set_description("loading data")
            dataset = load_dataset(args.data, format=args.format)
            empty_images = dataset.summary()["num_empty_images"]
            steps.set_description("counting co-occurrences")
            counts = count_cooccurrence(dataset.labels, dataset.vocabulary, progress=interactive)
        steps.update(1)
        steps.set_description("PMI + eigen-decomposition")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            embedding = embed_labels(counts, options=options, progress=interactive)
        steps.update(2)
        steps.set_description("writing")
        embedding.save(out)
        if args.projector:
            embedding.export_projector(out / "projector")
        if args.save_counts:
            counts.save_json(out / "counts.json")
        steps.update(1)
    finally:
        steps.close()
    for warning in caught:
        print(f"workbench embed: warning: {warning.message}", file=sys.stderr)
    diagnostics = embedding.settings["diagnostics"]
    dropped = len(embedding.settings["pmi"]["dropped_labels"])
    print(
        f"embedded {embedding.num_labels} labels ({dropped} dropped) from {counts.n_images} images in "
        f"{embedding.embedding_dim} dimensions: energy kept {100 * diagnostics['energy_kept']:.1f}%, "
        f"reconstruction error {diagnostics['reconstruction_error']:.3f}, "
        f"solver {embedding.settings['spectral']['solver']}, {time.perf_counter() - began:.1f} s -> {out}"
    )
    if empty_images:
        print(f"note: {empty_images} of {counts.n_images} images have no label; they count in N (every p(i) = c_i / N) "
              "but in no pair")
    return 0


def _embedding_differences(folder, options) -> str | None:
    """Which embedding options an earlier ``embed`` output in ``folder`` was made with differently (None: the same)."""
    from workbench._io import read_json
    from workbench.method.embed import EmbeddingOptions

    try:
        recorded = EmbeddingOptions.from_dict(read_json(folder / "embedding.json")["settings"]["options"])
    except (KeyError, TypeError, ValueError):
        return "settings not recorded"
    changed = recorded.differences(options)
    return ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items()) or None


def _add_neighbours(subparsers) -> None:
    parser = subparsers.add_parser(
        "neighbours",
        help="nearest labels of a label in an embedding",
        description="Print the labels nearest to --label by cosine similarity in an embedding written by 'workbench embed'.",
    )
    parser.add_argument("embedding", metavar="DIR", help="embedding folder (from 'workbench embed --out DIR')")
    parser.add_argument("--label", required=True, metavar="NAME", help="the label to look up")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="number of neighbours (default: 10)")
    parser.add_argument("--json", action="store_true", help='print {"label", "neighbours": [{"label", "similarity"}]}')
    parser.set_defaults(run=_run_neighbours)


def _run_neighbours(args) -> int:
    import json

    from workbench.method.embedding import LabelEmbedding

    embedding = LabelEmbedding.load(args.embedding)
    neighbours = embedding.nearest(args.label, top=args.top)
    if args.json:
        payload = {"label": args.label, "neighbours": [{"label": name, "similarity": round(value, 6)} for name, value in neighbours]}
        print(json.dumps(payload, ensure_ascii=False))
        return 0
    width = max((len(name) for name, _ in neighbours), default=0)
    print(f"nearest to {args.label!r} by cosine similarity ({embedding.embedding_dim} dimensions):")
    for name, value in neighbours:
        print(f"  {name:<{width}}  {value:+.3f}")
    return 0


# <<< section embed

# ---------------------------------------------------------------------------------
# train, compare (issue 4)
# ---------------------------------------------------------------------------------
# >>> section train
def _train_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Trunk and optimisation settings shared by ``train`` and ``compare``."""
    parser.add_argument("--epochs", type=int, default=10, metavar="E", help="epochs (default: 10)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="B", help="batch size (default: 64)")
    parser.add_argument("--image-size", type=int, default=64, metavar="S", help="image side fed to the network (default: 64)")
    parser.add_argument("--width", type=int, default=16, metavar="W", help="channels of the first block (default: 16)")
    parser.add_argument("--depth", type=int, default=4, metavar="D", help="convolution blocks (default: 4)")
    parser.add_argument("--no-augment", action="store_true", help="turn off random flips and shifts")
    parser.add_argument(
        "--batchnorm-momentum", type=float, default=0.99, metavar="M",
        help="momentum of batch-norm's moving statistics (default: 0.99; lower, e.g. 0.9, for runs of few hundred steps)",
    )
    parser.add_argument("--validation-fraction", type=float, default=0.1, metavar="F", help="held-out share (default: 0.1)")
    parser.add_argument("--workers", type=int, default=2, metavar="T", help="threads preparing batches (default: 2)")
    parser.add_argument("--skip-bad-images", action="store_true",
                        help="leave out image files that cannot be read (default: refuse them, naming them, before training)")
    parser.add_argument("--devices", default=None, metavar="N|all",
                        help="train data-parallel on N devices or all (JAX backend: KERAS_BACKEND=jax; default: one)")


def _use_devices(args) -> None:
    from workbench.learning.devices import use_devices

    count = use_devices(args.devices, batch_size=args.batch_size)
    if count > 1:
        print(f"training on {count} devices (data parallel, global batch {args.batch_size})")


def _model_config(args):
    from workbench.learning.models import ModelConfig

    return ModelConfig(
        image_size=args.image_size, width=args.width, depth=args.depth, augment=not args.no_augment,
        batchnorm_momentum=args.batchnorm_momentum,
    )


def _load_data(args):
    from workbench.data.datasets import load_dataset

    return load_dataset(args.data, format=args.format)


def _add_train(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a CNN head (pmi, sigmoid, random, identity); resumes an interrupted run",
        description="Train a CNN against a label embedding (cosine loss) or with sigmoid cross-entropy, evaluate "
        "MAP@100 on a validation split every epoch, checkpoint every epoch and write RUN_DIR/model.keras, "
        "RUN_DIR/embedding/, RUN_DIR/config.json and RUN_DIR/history.json. Run it again with the same --out "
        "to resume after an interruption.",
    )
    add_data_arguments(parser)
    parser.add_argument("--embedding", metavar="DIR", help="label embedding written by 'workbench embed' (needed by --head pmi)")
    parser.add_argument("--head", default="pmi", choices=HEADS, help="head (default: pmi)")
    parser.add_argument("--learning-rate", type=float, default=None, metavar="LR", help="default: the head's tuned rate")
    parser.add_argument("--optimizer", default=OPTIMIZERS[0], choices=OPTIMIZERS, help=f"default: {OPTIMIZERS[0]}")
    parser.add_argument(
        "--dim", dest="embedding_dim", type=int, default=None, metavar="K",
        help=f"k of the random head (default: that of --embedding, else {DEFAULT_EMBEDDING_DIM})",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of initialisation and batch order (default: 0)")
    parser.add_argument("--sigmoid-bias", default=SIGMOID_BIASES[0], choices=SIGMOID_BIASES,
                        help="sigmoid head: output biases start at 0 or at each label's log-odds (default: zero; "
                        "'workbench compare' uses label_frequency)")
    _train_model_arguments(parser)
    parser.add_argument("--progress", action="store_true", help="also show Keras' per-batch progress bar")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run folder (new, or an earlier run to resume)")
    parser.set_defaults(run=_run_train)


def _run_train(args) -> int:
    from workbench.learning.config import TrainConfig
    from workbench.learning.training import train

    config = TrainConfig(
        head=args.head,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        optimizer=args.optimizer,
        sigmoid_bias=args.sigmoid_bias,
        embedding_dim=args.embedding_dim,
        validation_fraction=args.validation_fraction,
        random_state=args.seed,
        workers=args.workers,
        model=_model_config(args),
    )
    embedding = None
    if args.embedding:
        from workbench.method.embedding import LabelEmbedding

        embedding = LabelEmbedding.load(args.embedding)
    elif args.head == "pmi":
        raise UserError("the pmi head needs --embedding DIR (run 'workbench embed' first).")
    elif args.head == "random" and config.embedding_dim is None:
        config.embedding_dim = DEFAULT_EMBEDDING_DIM
    _use_devices(args)
    dataset = _load_data(args)
    run = train(dataset, config=config, out_dir=args.out, embedding=embedding, verbose=2 if args.progress else 1,
                skip_bad_images=args.skip_bad_images)
    last = run.history[-1] if run.history else {}
    summary = f"; final MAP@100 {last['map_at_100']:.4f}" if last.get("map_at_100") is not None else ""
    print(f"wrote {args.out}/model.keras ({len(run.history)} epochs{summary})")
    return 0


def _add_compare(subparsers) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare heads (pmi, sigmoid, random, identity) over seeds on one split",
        description="Split the data set once, compute the PMI embedding from the training split only, train every "
        "head with every seed (same trunk and epochs), and write DIR/results.json, DIR/map_curves.png and one run "
        "folder per head and seed; print final MAP@100 per head and the epochs each head needs to reach the "
        "sigmoid head's final MAP@100.",
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--embedding", metavar="DIR",
        help="use this label embedding (from 'workbench embed') instead of computing one from the training split",
    )
    add_embedding_arguments(parser, seed_flag="--solver-seed")
    parser.add_argument(
        "--heads", default=",".join(DEFAULT_HEADS), metavar="H,H",
        help=f"comma-separated heads, some of {', '.join(HEADS)} (default: {','.join(DEFAULT_HEADS)})",
    )
    parser.add_argument("--seeds", type=int, default=3, metavar="S", help="number of seeds, 0..S-1 (default: 3)")
    parser.add_argument(
        "--learning-rates", default=None, metavar="HEAD=LR,…", help="per-head overrides of the tuned learning rates"
    )
    _train_model_arguments(parser)
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (an earlier comparison resumes)")
    parser.set_defaults(run=_run_compare)


def _parse_learning_rates(text: str | None) -> dict:
    rates = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        head, _, value = item.partition("=")
        try:
            rates[head.strip()] = float(value)
        except ValueError:
            raise UserError(f"--learning-rates item {item!r} is not HEAD=NUMBER; write for example pmi=0.001,sigmoid=0.003.") from None
    return rates


def _run_compare(args) -> int:
    from pathlib import Path

    from workbench.apps.plot import plot_map_curves, save_figure
    from workbench.experiments.compare import compare
    from workbench.experiments.results import comparison_table

    heads = [head.strip() for head in args.heads.split(",") if head.strip()]
    if args.seeds < 1:
        raise UserError(f"--seeds must be at least 1; got {args.seeds}.")
    check_output_folder(args.out, marker="results.json", command="workbench compare")  # before the data is read
    embedding = embedding_options(args)
    if args.embedding:
        from workbench.method.embed import EmbeddingOptions
        from workbench.method.embedding import LabelEmbedding

        if embedding != EmbeddingOptions():
            raise UserError("--embedding DIR brings its own PMI and spectral settings; drop --dim, --pmi and the like, or drop --embedding.")
        embedding = LabelEmbedding.load(args.embedding)
    _use_devices(args)
    dataset = _load_data(args)
    results = compare(
        dataset,
        out_dir=args.out,
        embedding=embedding,
        heads=heads,
        epochs=args.epochs,
        seeds=range(args.seeds),
        batch_size=args.batch_size,
        model=_model_config(args),
        learning_rates=_parse_learning_rates(args.learning_rates),
        validation_fraction=args.validation_fraction,
        workers=args.workers,
        skip_bad_images=args.skip_bad_images,
    )
    import matplotlib.pyplot as plt

    ax = plot_map_curves(results)
    save_figure(ax, Path(args.out) / "map_curves.png")
    plt.close(ax.figure)
    print()
    print(comparison_table(results))
    print(f"\nwrote {args.out}/results.json and {args.out}/map_curves.png")
    return 0


# <<< section train

# ---------------------------------------------------------------------------------
# classify (issue 5)
# ---------------------------------------------------------------------------------
# >>> section classify
def _add_classify(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="rank the labels of new images with a trained run",
        description="Decode, resize and classify images with a run written by 'workbench train', and print each "
        "image's N best labels (--top) or every label at least as similar as --threshold. Images that cannot be "
        "classified are reported one line each (exit status 1); the others are still classified. Results are "
        "printed, then stored in RUN_DIR/results.sqlite unless --no-store; a store that cannot be written gives one "
        "line and exit status 3, with every result already printed.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by 'workbench train'")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, GIF, BMP, TIFF, WebP …)")
    setting = parser.add_mutually_exclusive_group(required=True)
    setting.add_argument("--top", type=int, metavar="N", help="the N best labels of each image")
    setting.add_argument(
        "--threshold", type=_threshold_value, metavar="T|auto",
        help="every label scoring >= T (similarity, decoder weight or probability); 'auto': the threshold "
        "'workbench calibrate' fitted for the decoder",
    )
    parser.add_argument("--decoder", default=DECODERS[0], choices=DECODERS,
                        help="how a predicted point becomes labels: cosine similarity, or the greedy or NNLS "
                        "decomposition of the point into label vectors (default: cosine)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--store", metavar="PATH", help="SQLite result store (default: RUN_DIR/results.sqlite)")
    parser.add_argument("--no-store", action="store_true", help="do not store the results")
    parser.set_defaults(run=_run_classify)


def _threshold_value(text: str):
    """``--threshold``: a number, or ``auto``."""
    if text == "auto":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor 'auto'") from None


def _run_classify(args) -> int:
    import json
    import os
    from pathlib import Path

    from workbench.method.decoding import setting_name

    if args.store and args.no_store:
        raise UserError("give --store PATH or --no-store, not both.")
    if args.threshold != "auto":
        setting_name(top=args.top, threshold=args.threshold)  # a bad N or T fails before the model loads
    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder; give a folder written by 'workbench train'.")
    if args.threshold == "auto":  # an uncalibrated run fails before the model loads
        from workbench.evaluation.calibration import calibrated_threshold

        calibrated_threshold(run_dir, decoder=args.decoder)
    store = store_path = None
    if not args.no_store:  # checked first, so a bad --store fails before the model loads
        from workbench.apps.store import ResultStore, default_store_path

        store_path = Path(args.store or default_store_path(run_dir))
        if store_path.exists():
            store = ResultStore(store_path)  # an existing file must be a result store
        elif store_path.parent.exists() and not os.access(store_path.parent, os.W_OK):
            raise UserError(f"{store_path.parent} is not writable; give --store a path you can write, or --no-store.")
    from workbench.apps.classify import Classifier

    classifier = Classifier.from_run_dir(run_dir, decoder=args.decoder)
    results = classifier.classify(args.images, top=args.top, threshold=args.threshold, keep_pixels=False)
    # Results are printed first: a store that fails (a full disk, a damaged page) loses none of them.
    if args.json:
        print(json.dumps([result.to_dict() for result in results], indent=2, ensure_ascii=False))
    else:
        score = "probability" if getattr(classifier.run, "head", None) == "sigmoid" else "similarity"
        for result in results:
            if not result.ok:
                print(f"{result.image}: error: {result.error}")
                continue
            print(f"{result.image}  (sha256 {result.sha256[:12]}…)")
            if not result.labels:
                print("    no label reaches the threshold")
            width = max((len(name) for name, _ in result.labels), default=0)
            weights = result.weights or [None] * len(result.labels)
            for rank, ((name, value), weight) in enumerate(zip(result.labels, weights), start=1):
                shown = "" if weight is None else f"weight {weight:.3f}  "
                print(f"  {rank:>3}. {name:<{width}}  {shown}{score} {value:.4f}")
    sys.stdout.flush()
    failed = sum(not result.ok for result in results)
    if failed:
        print(f"workbench classify: {failed} of {len(results)} image(s) could not be classified", file=sys.stderr)
    if store_path is not None and any(result.ok for result in results):
        import sqlite3

        try:
            store = store or ResultStore(store_path)  # created only now: a failed classify leaves no empty store
            store.add_classifications(results, run_id=store.add_trained_run(classifier.run, path=run_dir))
        except (sqlite3.Error, OSError, ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            print(f"workbench classify: error: could not store the results in {store_path} ({reason}); every result "
                  "is printed above.", file=sys.stderr)
            return EXIT_STORE_FAILED
    return 1 if failed else 0


def _add_calibrate(subparsers) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="fit a run's thresholds and top-N on its validation images; measure them on others",
        description="Split the run's validation images in two: on one part fit, for every decoder, the global "
        "threshold that maximises micro F1 and the one for macro F1, per-label thresholds and the best top-N; on "
        "the other part measure them (micro/macro F1, precision, recall, exact-set accuracy, label-count error, "
        "by number of true labels per image). Writes RUN_DIR/calibration.json, which 'workbench classify "
        "--threshold auto' and the upload app use.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="run folder written by 'workbench train'")
    add_data_arguments(parser)
    parser.add_argument("--decoders", default=None, metavar="D,D",
                        help=f"comma-separated decoders, some of {', '.join(DECODERS)} (default: all; for a sigmoid run: cosine)")
    parser.add_argument("--test-fraction", type=float, default=0.5, metavar="F",
                        help="share of the validation images kept apart to measure (default: 0.5)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the calibration/test division (default: 0)")
    parser.add_argument("--json", action="store_true", help="print the whole calibration as JSON")
    parser.set_defaults(run=_run_calibrate)


def _run_calibrate(args) -> int:
    import json
    from pathlib import Path

    from workbench.evaluation.calibration import OPERATING_POINTS, calibrate
    from workbench.notebook.helpers import format_table

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise UserError(f"{run_dir}: not a run folder; give a folder written by 'workbench train'.")
    decoders = None if args.decoders is None else [name.strip() for name in args.decoders.split(",") if name.strip()]
    from workbench.learning.runs import load_run

    report = calibrate(load_run(run_dir), _load_data(args), decoders=decoders, test_fraction=args.test_fraction,
                       random_state=args.seed)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    print(f"calibrated on {len(report['calibration_images'])} validation images, measured on "
          f"{len(report['test_images'])} others:")
    rows = []
    for decoder, entry in report["decoders"].items():
        for point in OPERATING_POINTS:
            value, test = entry["fitted"][point], entry["test"]
            setting = f"top {value}" if point == "top_n" else "one per label" if point == "per_label_thresholds" else f">= {value:.3f}"
            cells = [test[point].get(key) for key in ("micro_f1", "macro_f1", "micro_precision", "micro_recall", "exact_set_accuracy")]
            rows.append((decoder, point, setting, *(float("nan") if cell is None else cell for cell in cells),
                         float("nan") if test["map_at_100"] is None else test["map_at_100"]))
    table = format_table(rows, columns=["decoder", "operating point", "setting", "micro F1", "macro F1", "precision",
                                        "recall", "exact set", "MAP@100"])
    print("\n".join("  " + line for line in table.splitlines()))
    best = report["best"]
    print(f"best on the calibration images: {best['decoder']} at {best['operating_point']}; wrote {run_dir / 'calibration.json'}")
    return 0


# <<< section classify

# ---------------------------------------------------------------------------------
# ceiling: the best any head could reach with an embedding
# ---------------------------------------------------------------------------------
def _add_ceiling(subparsers) -> None:
    from workbench.evaluation.ceiling import CEILING_EMBEDDINGS

    parser = subparsers.add_parser(
        "ceiling",
        help="the decoding ceiling of PMI, random and identity embeddings against k (no training)",
        description="Decode every validation image's ideal target (the sum of its true labels' vectors) and report "
        "MAP@100 and macro AP: the best any trained head could reach with that embedding. The PMI embedding is "
        "computed from the training split. Writes DIR/ceiling.json and DIR/ceiling.png.",
    )
    add_data_arguments(parser)
    parser.add_argument("--dims", default="4,8,16,32,64,128", metavar="K,K", help="comma-separated k values (default: 4,8,16,32,64,128)")
    parser.add_argument("--embeddings", default=",".join(CEILING_EMBEDDINGS), metavar="E,E",
                        help=f"some of {', '.join(CEILING_EMBEDDINGS)} (default: all)")
    parser.add_argument("--decoder", default=DECODERS[0], choices=DECODERS, help="decoder of the targets (default: cosine)")
    parser.add_argument("--validation-fraction", type=float, default=0.1, metavar="F", help="held-out share (default: 0.1)")
    add_embedding_arguments(parser, seed_flag="--solver-seed")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the random embedding (default: 0)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier ceiling output)")
    parser.set_defaults(run=_run_ceiling)


def _integers(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{flag} takes comma-separated whole numbers, for example 4,16,64; got {text!r}.") from None


def _run_ceiling(args) -> int:
    from workbench._io import atomic_write_json
    from workbench.evaluation.ceiling import decoding_ceiling

    out = check_output_folder(args.out, marker="ceiling.json", command="workbench ceiling")
    options = embedding_options(args)
    dims = _integers(args.dims, "--dims")
    embeddings = [name.strip() for name in args.embeddings.split(",") if name.strip()]
    report = decoding_ceiling(_load_data(args), dims=dims, embeddings=embeddings, options=options, decoder=args.decoder,
                              validation_fraction=args.validation_fraction, random_state=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ceiling.json", report)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from workbench.apps.plot import plot_ceiling, save_figure

    ax = plot_ceiling(report)
    save_figure(ax, out / "ceiling.png")
    plt.close(ax.figure)
    from workbench.notebook.helpers import format_table

    rows = [(row["embedding"], row["dim"], row["dim_achieved"], row["map_at_100"], row["macro_ap"]) for row in report["rows"]]
    print(format_table(rows, columns=["embedding", "k", "k achieved", "MAP@100", "macro AP"]))
    print(f"decoder {args.decoder}, {report['config']['num_validation_images_with_labels']} validation images; "
          f"wrote {out / 'ceiling.json'} and {out / 'ceiling.png'}")
    return 0

# ---------------------------------------------------------------------------------
# count: co-occurrence counts of label shards on a Dask cluster
# ---------------------------------------------------------------------------------
def _add_count(subparsers) -> None:
    parser = subparsers.add_parser(
        "count",
        help="count label co-occurrences over label shards on a Dask cluster (larger than memory)",
        description="Count every label and label pair over label shards (.csv in the labels.csv layout, or .npz "
        "written by write_label_shards with a vocabulary.csv), one task per shard on a Dask cluster, partial counts "
        "summed in a tree, and write the counts JSON that 'workbench embed --counts' reads. Only one shard at a time "
        "is in a worker's memory, so the shards together may be larger than any machine's.",
    )
    parser.add_argument("shards", nargs="+", metavar="SHARD", help="label shards (.csv or .npz)")
    parser.add_argument("--vocabulary", metavar="vocabulary.csv", help="the labels of .npz shards (label,group,subgroup)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask scheduler (tcp://host:8786) whose workers see the shards "
                        "(default: a local cluster of --cores processes)")
    parser.add_argument("--cores", type=int, default=None, metavar="N", help="local worker processes (default: every core)")
    parser.add_argument("--out", required=True, metavar="COUNTS.json", help="the counts file to write (a new file)")
    parser.set_defaults(run=_run_count)


def _run_count(args) -> int:
    import os

    from workbench._cluster import dask_client
    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import count_cooccurrence_dask

    out = Path(args.out)
    if out.exists():
        raise UserError(f"{out} exists; give --out a new file, so that nothing of yours is replaced.")
    missing = [shard for shard in args.shards if not Path(shard).is_file()]
    if missing:
        raise UserError(f"label shard {missing[0]} not found{f' (and {len(missing) - 1} more)' if len(missing) > 1 else ''}.")
    vocabulary = Vocabulary.read_csv(args.vocabulary) if args.vocabulary else None
    shards = [str(Path(shard).resolve()) for shard in args.shards]
    if args.cores is not None and args.cores < 1:
        raise UserError(f"--cores must be at least 1; got {args.cores}.")
    with dask_client(args.scheduler, workers=min(args.cores or os.cpu_count() or 1, len(shards))) as client:
        counts = count_cooccurrence_dask(shards, client=client, vocabulary=vocabulary)
    counts.save_json(out, description=f"counted by 'workbench count' over {len(shards)} label shard(s)")
    print(f"{counts.n_images} images, {len(counts.vocabulary)} labels, {counts.pair_counts.nnz // 2} label pairs "
          f"seen together; wrote {out}")
    return 0


# ---------------------------------------------------------------------------------
# experiment: a grid of settings, every cell resumable, aggregated with intervals
# ---------------------------------------------------------------------------------
def _add_experiment(subparsers) -> None:
    parser = subparsers.add_parser(
        "experiment",
        help="run a grid of settings (data, embedding, heads, seeds) and aggregate it with confidence intervals",
        description="Expand a TOML grid file into cells, train every head and seed of every cell in the cell's own "
        "folder (a rerun skips finished cells and resumes unfinished ones), run cells in parallel on Dask, and write "
        "DIR/results.csv, DIR/results.json (rows, histories, paired tests, provenance) and DIR/results.png. "
        "The grid format: docs/experiments.md.",
    )
    parser.add_argument("--grid", required=True, metavar="GRID.toml", help="the grid file")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier experiment)")
    parser.add_argument("--cores", type=int, default=None, metavar="N",
                        help="cells run at once on a local Dask cluster (default: every core; 1: one after another here)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="a running Dask scheduler (tcp://host:8786) whose workers see DIR; --cores is then ignored")
    parser.add_argument("--tune-lr", action="store_true", default=None,
                        help="choose each head's learning rate from a small sweep on the training split (equal budgets)")
    parser.add_argument("--devices", default=None, metavar="N|all",
                        help="each cell trains data-parallel on N devices or all (JAX backend; use with --cores 1)")
    parser.set_defaults(run=_run_experiment)


def _run_experiment(args) -> int:
    from workbench.experiments.grid import read_grid
    from workbench.experiments.results import results_table
    from workbench.experiments.experiment import run_experiment

    from workbench.learning.config import parse_devices

    grid = read_grid(args.grid)
    results = run_experiment(grid, out_dir=args.out, cores=args.cores, scheduler=args.scheduler, tune_lr=args.tune_lr,
                             devices=parse_devices(args.devices), print_function=lambda line: print(line, flush=True))
    if results["rows"]:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from workbench.apps.plot import plot_experiment, save_figure

        ax = plot_experiment(results)
        save_figure(ax, Path(args.out) / "results.png")
        plt.close(ax.figure)
        print(results_table(results))
    print(f"wrote {Path(args.out) / 'results.csv'} and {Path(args.out) / 'results.json'}")
    for report in results["failed"]:
        print(f"workbench experiment: cell {report['cell']} failed: {report['error']} "
              f"(see {Path(args.out) / 'cells' / report['cell'] / 'log.txt'})", file=sys.stderr)
    return EXIT_SOME_FAILED if results["failed"] else 0


# ---------------------------------------------------------------------------------
# run (issue 6): the main job
# ---------------------------------------------------------------------------------
# >>> section run
def _add_run(subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="the main job: execute every notebook on the bundled emoji scenes, export HTML, summarise",
        description="Execute the numbered notebooks in order (fresh kernel each), write executed copies and "
        "HTML under the results folder, and print a summary with the MAP table of the comparison.",
    )
    parser.add_argument("--profile", default=None, choices=PROFILE_NAMES,
                        help="size of the run (default: $WORKBENCH_PROFILE or 'workshop')")
    parser.add_argument("--notebooks", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    parser.add_argument("--out", default=None, help="results folder (default: results/PROFILE)")
    parser.add_argument("--only", nargs="+", metavar="PREFIX", help="run only notebooks whose names start with these")
    parser.add_argument("--no-html", action="store_true", help="skip the HTML export")
    parser.set_defaults(run=_run_run)


def _run_run(args) -> int:
    import os

    from workbench.notebook.pipeline import format_summary, run_notebooks

    profile = args.profile or os.environ.get("WORKBENCH_PROFILE") or "workshop"
    job = run_notebooks(notebook_dir=args.notebooks, out_dir=args.out, profile=profile, only=args.only, html=not args.no_html)
    print()
    print(format_summary(job))
    return 0 if job.ok else 1


# <<< section run


def _subcommands():
    """Every ``_add_*`` function defined above, in file order."""
    return [value for name, value in globals().items() if name.startswith("_add_") and callable(value)]


_SUBCOMMANDS = _subcommands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
