"""Atomic writes: complete files or none, never a leftover temporary, ordinary permissions."""

import os
import stat

import numpy as np
import pytest

from workbench._io import atomic_path, atomic_save_npz, atomic_write_json, atomic_write_text, read_json


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "settings.json"
    atomic_write_json(target, {"k": 1})
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text('{"k": 2, "half')
            raise RuntimeError("crash in the middle of a write")
    assert read_json(target) == {"k": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_json_refuses_nan_and_keeps_numpy_scalars(tmp_path):
    target = tmp_path / "figures.json"
    atomic_write_json(target, {"count": np.int64(3), "share": np.float32(0.5), "vector": np.arange(2)})
    assert read_json(target) == {"count": 3, "share": 0.5, "vector": [0, 1]}
    with pytest.raises(ValueError):
        atomic_write_json(target, {"map": float("nan")})
    assert read_json(target)["count"] == 3
    (tmp_path / "broken.json").write_text('{"a": ')
    with pytest.raises(ValueError, match=r"broken\.json: not valid JSON \(line 1"):
        read_json(tmp_path / "broken.json")


def test_npz_refuses_object_arrays(tmp_path):
    with pytest.raises(ValueError, match="dtype object"):
        atomic_save_npz(tmp_path / "a.npz", labels=np.array([{"a": 1}], dtype=object))
    assert not any(tmp_path.iterdir())


def test_new_files_get_the_umask_mode_and_replaced_files_keep_theirs(tmp_path):
    previous = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.txt"
        atomic_write_text(fresh, "hello")
        plain = tmp_path / "plain.txt"
        plain.write_text("hello")  # what open() gives under the same umask
        assert _mode(fresh) == _mode(plain) == 0o644
        os.chmod(fresh, 0o600)
        atomic_write_text(fresh, "again")
        assert _mode(fresh) == 0o600 and fresh.read_text() == "again"
    finally:
        os.umask(previous)


def test_a_dead_writers_temporary_is_removed_at_once_and_a_live_ones_is_kept(tmp_path):
    """Temporaries carry their writer's PID: a killed writer's is cleaned by the next write, a running one's is not."""
    import os
    import subprocess
    import sys

    from workbench._io import atomic_write_text

    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(finished.stdout)
    dead = tmp_path / f".notes.txt.{dead_pid}-abc123.tmp"
    alive = tmp_path / f".notes.txt.{os.getppid()}-def456.tmp"
    unnamed = tmp_path / ".notes.txt.xyz789.tmp"  # an older name without a PID: only its age counts
    for path in (dead, alive, unnamed):
        path.write_text("half")
    atomic_write_text(tmp_path / "notes.txt", "whole")
    assert (tmp_path / "notes.txt").read_text() == "whole"
    assert not dead.exists() and alive.exists() and unnamed.exists()
