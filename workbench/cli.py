"""The ``workbench`` command: argument parsing only; all work happens in the package.

Each subcommand has one section below: a ``_add_<name>(subparsers)`` function that
declares its arguments and a ``_run_<name>(args)`` function that calls the package.
Heavy modules (Keras above all) are imported inside ``_run_*`` so that
``workbench --help`` and the PMI commands start fast.

User errors (``ValueError``, ``FileNotFoundError``, ``KeyError`` raised for bad
input) are printed as one line, ``workbench <command>: error: …``, with exit status 2;
never a traceback.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


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
        return int(args.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"workbench {args.command}: error: {message}", file=sys.stderr)
        return 2
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
    parser.add_argument(
        "--format",
        default="auto",
        choices=["auto", "scenes", "list-csv", "multihot-csv", "coco", "yolo", "voc"],
        help="format of --data (default: detected)",
    )


# ---------------------------------------------------------------------------------
# scenes (issue 2)
# ---------------------------------------------------------------------------------
# >>> section scenes


# <<< section scenes

# ---------------------------------------------------------------------------------
# embed, neighbours (issue 3)
# ---------------------------------------------------------------------------------
# >>> section embed


# <<< section embed

# ---------------------------------------------------------------------------------
# train, compare (issue 4)
# ---------------------------------------------------------------------------------
# >>> section train


# <<< section train

# ---------------------------------------------------------------------------------
# classify (issue 5)
# ---------------------------------------------------------------------------------
# >>> section classify


# <<< section classify

# ---------------------------------------------------------------------------------
# run (issue 6): the main job
# ---------------------------------------------------------------------------------
# >>> section run


# <<< section run


def _subcommands():
    """Every ``_add_*`` function defined above, in file order."""
    return [value for name, value in globals().items() if name.startswith("_add_") and callable(value)]


_SUBCOMMANDS = _subcommands()

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
