"""Atomic file writing shared by every module that writes an artefact.

Every write goes to a temporary file in the destination's folder, is flushed to disk,
then renamed over the destination, so a crash or a bad input never leaves a
half-written file where a complete one is expected.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import glob
import tempfile
import time
from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["atomic_path", "atomic_write_text", "atomic_write_bytes", "atomic_write_json", "atomic_save_npz", "read_json",
           "check_output_folder"]


#: A temporary file of an atomic write older than this many seconds was left by a killed writer.
STALE_TEMPORARY_SECONDS = 3600


def _writer_is_gone(leftover: Path, name: str) -> bool:
    """Whether the process that made ``leftover`` (its PID is in the name: ``.NAME.PID-RANDOM.tmp``) has ended."""
    rest = leftover.name[len(name) + 2:]
    pid_text, dash, _ = rest.partition("-")
    if not dash or not pid_text.isdigit():
        return False  # an older name without a PID: only its age tells
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, and someone else's
        return False
    return False


def _remove_stale_temporaries(path: Path, suffix: str) -> None:
    """Remove ``.NAME.*SUFFIX`` files beside ``path`` left by a killed writer: its process is gone, or an hour passed."""
    limit = time.time() - STALE_TEMPORARY_SECONDS
    for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{glob.escape(suffix)}"):
        with contextlib.suppress(OSError):
            if leftover.is_file() and (_writer_is_gone(leftover, path.name) or leftover.stat().st_mtime < limit):
                leftover.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, *, suffix: str = "", durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left untouched.
    With ``durable=True`` the file is flushed to disk (fsync) before the rename, so it
    survives a power loss too; bulk writers of many small files (image folders) pass
    ``False`` and make one durable file, written last, their commit marker.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path, suffix or ".tmp")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=suffix or ".tmp", dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        # mkstemp creates the file private (0600): give it the mode a plain open() would,
        # or keep the mode of the file it replaces
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(temporary, mode)
        yield temporary
        if durable:
            with open(temporary, "rb+") as stream:
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        if isinstance(error, OSError) and error.errno is not None and not error.filename:
            # a failed write() names no file ("No space left on device"): name the one being written
            raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(path)) from error
        raise


@functools.lru_cache(maxsize=1)
def _umask() -> int:
    """The process's umask (read once; setting it is the only portable way to read it)."""
    try:  # Linux: read it without changing it (changing it races with other threads)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path` for ``durable``)."""
    with atomic_path(path, durable=durable) as temporary:
        temporary.write_bytes(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, data) -> None:
    """Write ``data`` as indented JSON atomically (NaN and infinities are refused)."""
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False, default=_json_default) + "\n")


def read_json(path: str | Path):
    """Read a JSON file with a one-line error naming the file when it is malformed."""
    path = Path(path)
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}).") from None
    except RecursionError:
        raise ValueError(f"{path}: the JSON is nested too deeply to read; it is not a file the workbench wrote.") from None
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start}); it is not a JSON file.") from None


def check_output_folder(path: str | Path, *, marker: str, command: str, differences=None) -> Path:
    """Refuse, before anything is written, an output folder that is not new, empty, or ``command``'s own.

    One policy for every command that writes a folder: it may be new, empty, or an
    earlier output of the same command (recognised by its ``marker`` file) made with
    the same settings; anything else is a one-line ``ValueError`` and nothing is touched.
    A marker the workbench did not write (someone's own ``embedding.json``: not a JSON
    object with a workbench ``format`` or recorded ``config``) is "not written by the
    workbench", never "an earlier output with other settings".

    Parameters
    ----------
    path : path
        The ``--out`` folder.
    marker : str
        The file the command writes into every output folder (``"embedding.json"``).
    command : str
        How the message names the command (``"workbench embed"``).
    differences : callable, optional
        ``differences(folder) -> str | None``: for an earlier output, which settings
        differ (``None`` when they are the same).

    Returns
    -------
    pathlib.Path
    """
    folder = Path(path)
    if not folder.exists():
        return folder
    if not folder.is_dir():
        raise ValueError(f"{folder} exists and is not a folder; give --out a folder path.")
    if not any(not entry.name.startswith(".") for entry in folder.iterdir()):  # temporaries of a killed writer don't count
        return folder
    if not (folder / marker).is_file():
        raise ValueError(f"{folder} is not empty and was not written by '{command}' (no {marker}); give --out a new "
                         "or empty folder, so that nothing of yours is replaced.")
    foreign = _not_written_by_workbench(folder / marker)
    if foreign:
        raise ValueError(f"{folder} holds a {marker} that was not written by the workbench ({foreign}); give --out a new "
                         "or empty folder, so that nothing of yours is replaced.")
    changed = differences(folder) if differences is not None else None
    if changed:
        raise ValueError(f"{folder} holds an earlier '{command}' output with other settings ({changed}); give --out a "
                         "new folder, or delete it to start over.")
    return folder


def _not_written_by_workbench(path: Path) -> str | None:
    """Why the marker file ``path`` is not one the workbench wrote (a few words), or None when it is.

    Every marker the workbench writes is a JSON object naming its format
    (``"format": "workbench-…"``: embeddings, experiments) or recording the settings
    it was made with (a ``"config"`` object: comparisons, ceilings).
    """
    try:
        data = read_json(path)
    except ValueError:
        return "not valid JSON"
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if "format" in data:
        form = data["format"]
        return None if isinstance(form, str) and form.startswith("workbench-") else f"its format is {form!r}"
    return None if isinstance(data.get("config"), dict) else "no workbench format marker and no recorded settings"


def atomic_save_npz(path: str | Path, **arrays: np.ndarray) -> None:
    """Save arrays with :func:`numpy.savez` atomically (object arrays are refused)."""
    for name, array in arrays.items():
        if np.asarray(array).dtype == object:
            raise ValueError(f"Array {name!r} has dtype object; artefacts store plain numeric or string arrays only.")
    with atomic_path(path, suffix=".npz") as temporary:
        with open(temporary, "wb") as stream:
            np.savez(stream, **arrays)


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")
