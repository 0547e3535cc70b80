"""The ``workbench`` command: argument parsing only; all work happens in the package.

One section per subcommand: ``_add_<name>`` declares its arguments (every choice list and help text
from the package) and ``_run_<name>`` calls the package and prints the text it returns. Keras is
imported inside ``_run_*`` only, so ``workbench --help`` starts fast. User errors (``ValueError``,
``FileNotFoundError``, ``KeyError``) are one line, ``workbench <command>: error: …``, exit status 2;
faults of the machine (``OSError``: a full disk, a read-only folder) likewise, exit status 4; never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench import _checks
from workbench.experiments.compare import DEFAULT_HEADS
from workbench.learning.config import HEADS, K_HEADS, OPTIMIZERS, PMI_HEADS, SIGMOID_BIASES, STOPPING_ARGUMENTS, stopping_from_arguments
from workbench.method.decoders import DECODERS
from workbench.method.embed import DEFAULT_EMBEDDING_DIM
from workbench.notebook.profiles import PROFILE_NAMES

__all__ = ["main", "build_parser"]

#: Exit status when some of the work failed and the rest was done (cells that failed; ``classify``: images not
#: classified, and 3 when the results were printed but could not be stored: :func:`~workbench.apps.classify.classify_files`).
EXIT_SOME_FAILED = 1
#: Exit status of any command stopped by the machine rather than its input (a full disk, an I/O error).
EXIT_SYSTEM_ERROR = 4
#: Commands that load Keras: TensorFlow's start-up notices are dropped as it is imported.
_KERAS_COMMANDS = {"train", "compare", "classify", "calibrate"}


def build_parser() -> argparse.ArgumentParser:
    from workbench import __version__
    parser = argparse.ArgumentParser(prog="workbench", description="PMI label-embedding research workbench: data sets, PMI, spectral label embeddings, CNNs trained against cosine loss, and classification.")
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
    except (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return 2
    except OSError as error:  # the machine, not the input: a full disk, a read-only folder, an I/O error
        where = f" {error.filename}" if getattr(error, "filename", None) else ""
        reason = error.strerror or str(error) or type(error).__name__
        print(f"workbench {args.command}: error: could not read or write{where} ({reason}); nothing was half-written, "
              "earlier files are intact: free disk space or check the folder's permissions, then run it again.", file=sys.stderr)
        return EXIT_SYSTEM_ERROR
    except KeyboardInterrupt:
        print(f"workbench {args.command}: interrupted", file=sys.stderr)
        return 130


# --- shared arguments and helpers ----------------------------------------------------------------
def _parser(subparsers, name: str, run, help: str, description: str, **options) -> argparse.ArgumentParser:
    """A subcommand's parser, running ``run(args)``."""
    parser = subparsers.add_parser(name, help=help, description=description, **options)
    parser.set_defaults(run=run)
    return parser


def add_data_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``--data DATASET [--format FORMAT]``, shared by every command that reads a data set."""
    from workbench.data.datasets import FORMATS
    parser.add_argument("--data", required=required, metavar="DATASET",
                        help="a data set: a folder written by 'workbench scenes', or a file/folder in any loader format")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="format of --data (default: detected)")


def add_embedding_arguments(parser: argparse.ArgumentParser, *, seed_flag: str = "--seed") -> None:
    """Every PMI and spectral choice (:class:`workbench.method.embed.EmbeddingOptions`), for commands that embed.

    Flags, defaults, choices and help all come from the package (``OPTION_FLAGS``, ``OPTION_HELP``), so
    ``embed``, ``compare`` and ``ceiling`` offer the same options with the same defaults. ``seed_flag`` names
    the solver's seed (``--seed`` for ``embed``; ``--solver-seed`` where ``--seeds`` means training seeds).
    """
    from dataclasses import fields
    from workbench.method.embed import OPTION_FLAGS, OPTION_HELP, EmbeddingOptions
    group = parser.add_argument_group("label embedding (PMI and eigen-decomposition)")
    for field in fields(EmbeddingOptions):
        (flag, kind), default = OPTION_FLAGS[field.name], getattr(EmbeddingOptions(), field.name)
        shown = "" if default is None else f" (default: {default:g})" if isinstance(default, float) else f" (default: {default})"
        typed = {"metavar": kind, "type": float if default is None else type(default)} if isinstance(kind, str) else {"choices": kind}
        group.add_argument(flag or seed_flag, dest=field.name, default=default, help=OPTION_HELP[field.name] + shown, **typed)


def embedding_options(args):
    """The :class:`~workbench.method.embed.EmbeddingOptions` of parsed :func:`add_embedding_arguments` flags."""
    from dataclasses import fields
    from workbench.method.embed import EmbeddingOptions
    return EmbeddingOptions(**{field.name: getattr(args, field.name) for field in fields(EmbeddingOptions)})


def _load_data(args):
    from workbench.data.datasets import load_dataset
    return load_dataset(args.data, format=args.format)


# --- scenes --------------------------------------------------------------------------------------
def _add_scenes(subparsers) -> None:
    parser = _parser(subparsers, "scenes", _run_scenes, "generate the bundled emoji-scenes data set",
                     "Generate emoji scenes (images of Unicode emoji with their CLDR names as labels) and write DIR/images/*.png, DIR/labels.csv, "
                     "DIR/vocabulary.csv and the data card DIR/card.md (+ card.json: training images per label, look-alike glyphs).",
                     epilog="Needs fonts-noto-color-emoji and unicode-data (Debian packages), or WORKBENCH_EMOJI_FONT and WORKBENCH_EMOJI_TEST set.")
    add = parser.add_argument
    add("--images", dest="num_images", type=int, required=True, metavar="N", help="number of images")
    add("--labels", dest="num_labels", type=int, default=None, metavar="C", help="number of labels (default: every emoji of the groups)")
    add("--size", dest="image_size", type=int, default=64, metavar="S", help="image side in pixels (default: 64)")
    add("--seed", dest="random_state", type=int, default=0, metavar="S", help="random seed (default: 0)")
    add("--min-labels", type=int, default=1, metavar="K", help="fewest glyphs per image (default: 1)")
    add("--max-labels", type=int, default=6, metavar="K", help="most glyphs per image (default: 6)")
    add("--missing-rate", type=float, default=0.0, metavar="R", help="chance a drawn glyph is not labelled (default: 0)")
    add("--spurious-rate", type=float, default=0.0, metavar="R", help="chance per glyph of an extra label without a glyph (default: 0)")
    add("--label-skew", type=float, default=1.0, metavar="A", help="labels' Zipf exponent: rank r drawn as r^-A (default: 1; 0: even)")
    add("--topic-balance", type=float, default=0.0, metavar="B", help="topics drawn as popularity^(1-B) x labels^B (default: 0; 1: by size)")
    add("--all-groups", dest="groups", action="store_const", const="all", default="objects", help="every Unicode emoji group, not only the object-like ones")
    add("--validation-fraction", type=float, default=0.2, metavar="F", help="the card counts labels on the training split of F held out (default: 0.2, as a grid)")
    add("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier scenes output)")


def _run_scenes(args) -> int:
    from workbench.data.scenes import SceneConfig, SceneGenerator
    config = SceneConfig(**{name: getattr(args, name) for name in SceneConfig.__dataclass_fields__ if hasattr(args, name)})
    print(SceneGenerator(config).write_report(args.out, validation_fraction=args.validation_fraction))
    return 0


# --- embed, neighbours, map ----------------------------------------------------------------------
def _add_embed(subparsers) -> None:
    parser = _parser(subparsers, "embed", _run_embed, "PMI spectral label embedding from a data set or counts",
                     "Count label co-occurrences (or read counts), compute PMI, write DIR/embedding.npz + .json.")
    add_data_arguments(parser, required=False)
    parser.add_argument("--counts", metavar="COUNTS.json", help="co-occurrence counts JSON instead of --data")
    parser.add_argument("--validation-fraction", type=float, default=0.1, metavar="F", help="--data: count only the training split (F held out as by train; 0: all)")
    add_embedding_arguments(parser)
    parser.add_argument("--projector", action="store_true", help="also write DIR/projector/{vectors,metadata}.tsv")
    parser.add_argument("--save-counts", action="store_true", help="also write the counts as DIR/counts.json")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


def _run_embed(args) -> int:
    from workbench.method.embed import write_embedding
    if (args.data is None) == (args.counts is None):
        raise ValueError("give exactly one of --data DATASET or --counts COUNTS.json.")
    _, summary, warnings = write_embedding(args.out, options=embedding_options(args), counts=args.counts, data=args.data,
                                           data_format=args.format, projector=args.projector, save_counts=args.save_counts,
                                           progress=sys.stderr.isatty(), validation_fraction=args.validation_fraction)
    for warning in warnings:
        print(f"workbench embed: warning: {warning}", file=sys.stderr)
    print(summary)
    return 0


def _add_neighbours(subparsers) -> None:
    parser = _parser(subparsers, "neighbours", _run_neighbours, "nearest labels of a label in an embedding",
                     "Print the labels nearest to --label by cosine similarity in an embedding written by 'workbench embed'.")
    parser.add_argument("embedding", metavar="DIR", help="embedding folder (from 'workbench embed --out DIR')")
    parser.add_argument("--label", required=True, metavar="NAME", help="the label to look up")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="number of neighbours (default: 10)")
    parser.add_argument("--json", action="store_true", help='print {"label", "neighbours": [{"label", "similarity"}]}')


def _run_neighbours(args) -> int:
    from workbench.method.embedding import LabelEmbedding
    print(LabelEmbedding.load(args.embedding).neighbours_text(args.label, top=args.top, as_json=args.json))
    return 0


def _add_map(subparsers) -> None:
    from workbench.apps.labelmap import MAP_ARGUMENTS, MAP_TEXTS
    parser = _parser(subparsers, "map", _run_map, *MAP_TEXTS)
    for flag, options in MAP_ARGUMENTS:
        parser.add_argument(flag, **options)


def _run_map(args) -> int:
    from workbench.apps.labelmap import MAP_ARGUMENTS, write_label_map
    print(write_label_map(**{options.get("dest", flag): getattr(args, options.get("dest", flag)) for flag, options in MAP_ARGUMENTS}))
    return 0


# --- train, compare ------------------------------------------------------------------------------
def _train_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Trunk and optimisation settings shared by ``train`` and ``compare``."""
    add = parser.add_argument
    add("--epochs", type=int, default=10, metavar="E", help="epochs (default: 10)")
    add("--batch-size", type=int, default=64, metavar="B", help="batch size (default: 64)")
    add("--image-size", type=int, default=64, metavar="S", help="image side fed to the network (default: 64)")
    add("--width", type=int, default=16, metavar="W", help="channels of the first block (default: 16)")
    add("--depth", type=int, default=4, metavar="D", help="convolution blocks (default: 4)")
    add("--no-augment", action="store_true", help="turn off random flips and shifts")
    add("--batchnorm-momentum", type=float, default=0.99, metavar="M",
        help="momentum of batch-norm's moving statistics (default: 0.99; lower, e.g. 0.9, for runs of few hundred steps)")
    add("--validation-fraction", type=float, default=0.1, metavar="F", help="held-out share (default: 0.1)")
    add("--workers", type=int, default=2, metavar="T", help="threads preparing batches (default: 2)")
    add("--skip-bad-images", action="store_true",
        help="leave out image files that cannot be read (default: refuse them, naming them, before training)")
    add("--allow-overlap", action="store_true", help="accept an embedding counted on validation images too (recorded)")
    add("--devices", default=None, metavar="N|all",
        help="train data-parallel on N devices or all (JAX backend: KERAS_BACKEND=jax; default: one)")
    for flag, options in STOPPING_ARGUMENTS:  # the schedule and the stopping rule, on a hold-out of the training split
        add(flag, **options)


def _use_devices(args) -> None:
    from workbench.learning.devices import use_devices
    if (count := use_devices(args.devices, batch_size=args.batch_size)) > 1:
        print(f"training on {count} devices (data parallel, global batch {args.batch_size})")


def _model_config(args):
    from workbench.learning.models import ModelConfig
    return ModelConfig(image_size=args.image_size, width=args.width, depth=args.depth, augment=not args.no_augment, batchnorm_momentum=args.batchnorm_momentum)


def _add_train(subparsers) -> None:
    parser = _parser(subparsers, "train", _run_train, "train a CNN head (pmi, sigmoid, random, identity or a control); resumes an interrupted run",
                     "Train a CNN against a label embedding (cosine loss) or with sigmoid cross-entropy, evaluate MAP@100 on a "
                     "validation split every epoch, checkpoint every epoch and write RUN_DIR/model.keras, RUN_DIR/embedding/, "
                     "RUN_DIR/config.json and RUN_DIR/history.json. Run it again with the same --out to resume after an interruption.")
    add_data_arguments(parser)
    add = parser.add_argument
    add("--embedding", metavar="DIR", help="label embedding written by 'workbench embed' (needed by pmi, shuffled, random-matched)")
    add("--head", default="pmi", choices=HEADS, help="head (default: pmi)")
    add("--learning-rate", type=float, default=None, metavar="LR", help="default: the head's tuned rate")
    add("--optimizer", default=OPTIMIZERS[0], choices=OPTIMIZERS, help=f"default: {OPTIMIZERS[0]}")
    add("--dim", dest="embedding_dim", type=int, default=None, metavar="K",
        help=f"k of the random, learned and sigmoid-lowrank heads (default: that of --embedding, else {DEFAULT_EMBEDDING_DIM})")
    add("--seed", type=int, default=0, metavar="S", help="seed of initialisation and batch order (default: 0)")
    add("--sigmoid-bias", default=SIGMOID_BIASES[0], choices=SIGMOID_BIASES, help="sigmoid head: output biases start at "
        "each label's log-odds or at 0 (default: label_frequency, as in 'workbench compare')")
    _train_model_arguments(parser)
    add("--progress", action="store_true", help="also show Keras' per-batch progress bar")
    add("--out", required=True, metavar="RUN_DIR", help="run folder (new, or an earlier run to resume)")


def _run_train(args) -> int:
    from workbench.learning.config import TrainConfig
    from workbench.learning.training import train
    from workbench.method.embedding import LabelEmbedding
    config = TrainConfig(
        head=args.head, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        optimizer=args.optimizer, sigmoid_bias=args.sigmoid_bias, embedding_dim=args.embedding_dim,
        validation_fraction=args.validation_fraction, random_state=args.seed, workers=args.workers, model=_model_config(args),
        **(stopping_from_arguments(vars(args)) or {}))
    if args.head in PMI_HEADS and not args.embedding:
        raise ValueError(f"the {args.head} head needs --embedding DIR (run 'workbench embed' first).")
    if args.head in K_HEADS and not args.embedding and config.embedding_dim is None:
        config.embedding_dim = DEFAULT_EMBEDDING_DIM
    embedding = LabelEmbedding.load(args.embedding) if args.embedding else None
    _use_devices(args)
    run = train(_load_data(args), config=config, out_dir=args.out, embedding=embedding, verbose=2 if args.progress else 1,
                skip_bad_images=args.skip_bad_images, allow_overlap=args.allow_overlap)
    last = run.history[-1] if run.history else {}
    summary = f"; final MAP@100 {last['map_at_100']:.4f}" if last.get("map_at_100") is not None else ""
    print(f"wrote {args.out}/model.keras ({len(run.history)} epochs{summary})")
    return 0


def _add_compare(subparsers) -> None:
    parser = _parser(subparsers, "compare", _run_compare, "compare heads (pmi, sigmoid, random, identity, controls) over seeds on one split",
                     "Split the data set once, compute the PMI embedding from the training split only, train every head with "
                     "every seed (same trunk and epochs), write DIR/results.json, DIR/comparison_curves.png and a run folder per head "
                     "and seed; print each head's final MAP@100 and the epochs it needs to reach the sigmoid head's.")
    add_data_arguments(parser)
    add = parser.add_argument
    add("--embedding", metavar="DIR", help="use this label embedding ('workbench embed') instead of computing one")
    add_embedding_arguments(parser, seed_flag="--solver-seed")
    add("--heads", default=",".join(DEFAULT_HEADS), metavar="H,H",
        help=f"comma-separated heads, some of {', '.join(HEADS)} (default: {','.join(DEFAULT_HEADS)})")
    add("--seeds", type=int, default=5, metavar="S", help="number of seeds, 0..S-1 (default: 5; a 95 %% interval of a difference needs at least 4)")
    add("--learning-rates", default=None, metavar="HEAD=LR,…", help="per-head overrides of the tuned learning rates")
    _train_model_arguments(parser)
    add("--out", required=True, metavar="DIR", help="output folder (an earlier comparison resumes)")


def _run_compare(args) -> int:
    from workbench._io import check_output_folder
    from workbench.apps.plot import plot_comparison_curves, save_plot
    from workbench.experiments.compare import compare
    from workbench.experiments.results import comparison_table
    from workbench.method.embed import EmbeddingOptions
    from workbench.method.embedding import LabelEmbedding
    if args.seeds < 1:
        raise ValueError(f"--seeds must be at least 1; got {args.seeds}.")
    check_output_folder(args.out, marker="results.json", command="workbench compare")  # before the data is read
    embedding = embedding_options(args)
    if args.embedding and embedding != EmbeddingOptions():
        raise ValueError("--embedding DIR brings its own PMI and spectral settings; drop --dim, --pmi and the like, or drop --embedding.")
    embedding = LabelEmbedding.load(args.embedding) if args.embedding else embedding
    rates = _checks.numbers_by_name(args.learning_rates, "--learning-rates", key="HEAD", example="pmi=0.001,sigmoid=0.003")
    _use_devices(args)
    results = compare(_load_data(args), out_dir=args.out, embedding=embedding, heads=_checks.names(args.heads), epochs=args.epochs,
                      seeds=range(args.seeds), batch_size=args.batch_size, model=_model_config(args), learning_rates=rates,
                      validation_fraction=args.validation_fraction, workers=args.workers, skip_bad_images=args.skip_bad_images,
                      allow_overlap=args.allow_overlap, stopping=stopping_from_arguments(vars(args)))
    save_plot(plot_comparison_curves, results, Path(args.out) / "comparison_curves.png")
    print(f"\n{comparison_table(results)}\n\nwrote {args.out}/results.json and {args.out}/comparison_curves.png")
    return 0


# --- classify, calibrate -------------------------------------------------------------------------
def _add_classify(subparsers) -> None:
    parser = _parser(subparsers, "classify", _run_classify, "rank the labels of new images with a trained run",
                     "Decode, resize and classify images with a run written by 'workbench train', and print each image's N "
                     "best labels (--top) or every label at least as similar as --threshold. Images that cannot be classified "
                     "are reported one line each (exit status 1); the others are still classified. Results are printed, then "
                     "stored in RUN_DIR/results.sqlite unless --no-store; a store that cannot be written gives one line and "
                     "exit status 3, with every result already printed.")
    add = parser.add_argument
    add("run_dir", metavar="RUN_DIR", help="run folder written by 'workbench train'")
    add("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, GIF, BMP, TIFF, WebP …)")
    setting = parser.add_mutually_exclusive_group(required=True)
    setting.add_argument("--top", type=int, metavar="N", help="the N best labels of each image")
    setting.add_argument("--threshold", type=_checks.number_or_auto, metavar="T|auto",
                         help="every label scoring >= T (similarity, decoder weight or probability); 'auto': the threshold "
                         "'workbench calibrate' fitted for the decoder")
    add("--decoder", default=DECODERS[0], choices=DECODERS, help="how a predicted point becomes labels: cosine similarity, "
        "or the greedy or NNLS decomposition of the point into label vectors (default: cosine)")
    add("--json", action="store_true", help="print a JSON list instead of a table")
    add("--store", metavar="PATH", help="SQLite result store (default: RUN_DIR/results.sqlite)")
    add("--no-store", action="store_true", help="do not store the results")


def _run_classify(args) -> int:
    from workbench.apps.classify import classify_files
    return classify_files(args.run_dir, args.images, top=args.top, threshold=args.threshold, decoder=args.decoder,
                          as_json=args.json, store=args.store, no_store=args.no_store)


def _add_calibrate(subparsers) -> None:
    parser = _parser(subparsers, "calibrate", _run_calibrate,
                     "fit a run's thresholds and top-N on its validation images; measure them on others",
                     "Split the run's validation images in two: on one part fit, for every decoder, the global threshold that maximises micro F1 and "
                     "the one for macro F1, per-label thresholds and the best top-N; on the other part measure them (micro/macro F1, precision, "
                     "recall, exact-set accuracy, label-count error, by number of true labels per image). Writes RUN_DIR/calibration.json, which "
                     "'workbench classify --threshold auto' and the upload app use.")
    add = parser.add_argument
    add("run_dir", metavar="RUN_DIR", help="run folder written by 'workbench train'")
    add_data_arguments(parser)
    add("--decoders", default=None, metavar="D,D",
        help=f"comma-separated decoders, some of {', '.join(DECODERS)} (default: all; for a sigmoid run: cosine)")
    add("--test-fraction", type=float, default=0.5, metavar="F", help="share of the validation images kept apart to measure (default: 0.5)")
    add("--seed", type=int, default=0, metavar="S", help="seed of the calibration/test division (default: 0)")
    add("--json", action="store_true", help="print the whole calibration as JSON")


def _run_calibrate(args) -> int:
    import json
    from workbench.evaluation.calibration import CALIBRATION_FILE, calibrate, calibration_table
    from workbench.learning.runs import load_run
    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").is_file():
        raise ValueError(f"{run_dir}: not a run folder; give a folder written by 'workbench train'.")
    report = calibrate(load_run(run_dir), _load_data(args), decoders=args.decoders and _checks.names(args.decoders),
                       test_fraction=args.test_fraction, random_state=args.seed)
    print(json.dumps(report, indent=2, ensure_ascii=False) if args.json else f"{calibration_table(report)}; wrote {run_dir / CALIBRATION_FILE}")
    return 0


# --- ceiling: the best any head could reach with an embedding --------------------------------------
def _add_ceiling(subparsers) -> None:
    from workbench.evaluation.ceiling import CEILING_EMBEDDINGS
    parser = _parser(subparsers, "ceiling", _run_ceiling,
                     "the decoding ceiling of PMI, random and identity embeddings against k (no training)",
                     "Decode every validation image's ideal target (the sum of its true labels' vectors) and report MAP@100 and "
                     "macro AP: the best any trained head could reach with that embedding. The PMI embedding is computed from "
                     "the training split. Writes DIR/ceiling.json and DIR/ceiling.png.")
    add_data_arguments(parser)
    add = parser.add_argument
    add("--dims", default="4,8,16,32,64,128", metavar="K,K", help="comma-separated k values (default: 4,8,16,32,64,128)")
    add("--embeddings", default=",".join(CEILING_EMBEDDINGS), metavar="E,E", help=f"some of {', '.join(CEILING_EMBEDDINGS)} (default: all)")
    add("--decoder", default=DECODERS[0], choices=DECODERS, help="decoder of the targets (default: cosine)")
    add("--validation-fraction", type=float, default=0.1, metavar="F", help="held-out share (default: 0.1)")
    add_embedding_arguments(parser, seed_flag="--solver-seed")
    add("--seed", type=int, default=0, metavar="S", help="seed of the random embedding (default: 0)")
    add("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier ceiling output)")


def _run_ceiling(args) -> int:
    from workbench._io import atomic_write_json, check_output_folder
    from workbench.apps.plot import plot_ceiling, save_plot
    from workbench.evaluation.ceiling import ceiling_table, decoding_ceiling
    out = check_output_folder(args.out, marker="ceiling.json", command="workbench ceiling")
    options, dims = embedding_options(args), _checks.integers(args.dims, "--dims")
    report = decoding_ceiling(_load_data(args), dims=dims, embeddings=_checks.names(args.embeddings), options=options,
                              decoder=args.decoder, validation_fraction=args.validation_fraction, random_state=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "ceiling.json", report)
    save_plot(plot_ceiling, report, out / "ceiling.png")
    print(f"{ceiling_table(report)}; wrote {out / 'ceiling.json'} and {out / 'ceiling.png'}")
    return 0


# --- count: co-occurrence counts of label shards on a Dask cluster ---------------------------------
def _add_count(subparsers) -> None:
    parser = _parser(subparsers, "count", _run_count,
                     "count label co-occurrences over label shards on a Dask cluster (larger than memory)",
                     "Count every label and label pair over label shards (.csv in the labels.csv layout, or .npz written by write_label_shards with a "
                     "vocabulary.csv), one task per shard on a Dask cluster, partial counts summed in a tree, and write the counts JSON that 'workbench "
                     "embed --counts' reads. Only one shard at a time is in a worker's memory, so the shards together may be larger than any machine's.")
    add = parser.add_argument
    add("shards", nargs="+", metavar="SHARD", help="label shards (.csv or .npz)")
    add("--vocabulary", metavar="vocabulary.csv", help="the labels of .npz shards (label,group,subgroup)")
    add("--scheduler", default=None, metavar="ADDRESS", help="a running Dask scheduler (tcp://host:8786) whose workers "
        "see the shards (default: a local cluster of --cores processes)")
    add("--cores", type=int, default=None, metavar="N", help="local worker processes (default: every core)")
    add("--out", required=True, metavar="COUNTS.json", help="the counts file to write (a new file)")


def _run_count(args) -> int:
    from workbench.method.cooccurrence import count_label_shards
    print(count_label_shards(args.shards, args.out, vocabulary=args.vocabulary, scheduler=args.scheduler, cores=args.cores))
    return 0


# --- experiment: a grid of settings, every cell resumable, aggregated with intervals ---------------
def _add_experiment(subparsers) -> None:
    parser = _parser(subparsers, "experiment", _run_experiment,
                     "run a grid of settings (data, embedding, heads, seeds) and aggregate it with confidence intervals",
                     "Expand a TOML grid file into cells, train every head and seed of every cell in the cell's own folder (a "
                     "rerun skips finished cells and resumes unfinished ones), run cells in parallel on Dask, and write "
                     "DIR/results.csv, DIR/comparisons.csv (head against baseline: interval, p, Holm-adjusted p, verdict), "
                     "DIR/results.json (rows, histories, comparisons, provenance) and DIR/results.png. Grid format: docs/experiments.md.")
    add = parser.add_argument
    add("--grid", required=True, metavar="GRID.toml", help="the grid file")
    add("--out", required=True, metavar="DIR", help="output folder (new, empty, or an earlier experiment)")
    add("--cores", type=int, default=None, metavar="N",
        help="cells run at once on a local Dask cluster (default: every core; 1: one after another here)")
    add("--scheduler", default=None, metavar="ADDRESS",
        help="a running Dask scheduler (tcp://host:8786) whose workers see DIR; --cores is then ignored")
    add("--tune-lr", action=argparse.BooleanOptionalAction, default=None,
        help="tune each head's learning rate on a hold-out of the training split (default: the grid's tune_lr, true)")
    add("--devices", default=None, metavar="N|all",
        help="each cell trains data-parallel on N devices or all (JAX backend; use with --cores 1)")


def _run_experiment(args) -> int:
    from workbench.apps.plot import plot_experiment, save_plot
    from workbench.experiments.experiment import run_experiment
    from workbench.experiments.grid import read_grid
    from workbench.experiments.results import results_table
    from workbench.learning.config import parse_devices
    results = run_experiment(read_grid(args.grid), out_dir=(out := Path(args.out)), cores=args.cores, scheduler=args.scheduler,
                             tune_lr=args.tune_lr, devices=parse_devices(args.devices),
                             print_function=lambda line: print(line, flush=True))
    if results["rows"]:
        save_plot(plot_experiment, results, out / "results.png")
        print(results_table(results))
    print(f"wrote {out / 'results.csv'}, {out / 'comparisons.csv'} and {out / 'results.json'}")
    for report in results["failed"]:
        print(f"workbench experiment: cell {report['cell']} failed: {report['error']} "
              f"(see {out / 'cells' / report['cell'] / 'log.txt'})", file=sys.stderr)
    return EXIT_SOME_FAILED if results["failed"] else 0


# --- run: the main job ---------------------------------------------------------------------------
def _add_run(subparsers) -> None:
    parser = _parser(subparsers, "run", _run_run,
                     "the main job: execute every notebook on the bundled emoji scenes, export HTML, summarise",
                     "Execute the numbered notebooks in order (fresh kernel each), write executed copies and HTML under the "
                     "results folder, and print a summary with the MAP table of the comparison.")
    add = parser.add_argument
    add("--profile", default=None, choices=PROFILE_NAMES, help="size of the run (default: $WORKBENCH_PROFILE or 'workshop')")
    add("--notebooks", default="notebooks", help="folder of numbered notebooks (default: notebooks)")
    add("--out", default=None, help="results folder (default: results/PROFILE)")
    add("--only", nargs="+", metavar="PREFIX", help="run only notebooks whose names start with these")
    add("--no-html", action="store_true", help="skip the HTML export")


def _run_run(args) -> int:
    import os
    from workbench.notebook.pipeline import format_summary, run_notebooks
    profile = args.profile or os.environ.get("WORKBENCH_PROFILE") or "workshop"
    job = run_notebooks(notebook_dir=args.notebooks, out_dir=args.out, profile=profile, only=args.only, html=not args.no_html)
    print(f"\n{format_summary(job)}")
    return 0 if job.ok else 1


#: Every ``_add_*`` function above, in file order.
_SUBCOMMANDS = [value for name, value in list(globals().items()) if name.startswith("_add_") and callable(value)]

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
