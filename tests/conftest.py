"""Shared fixtures and helpers (a tiny colour-band data set and a real run trained on it).

Quiet TensorFlow and use a non-interactive matplotlib backend. Test modules import the helpers
as ``from tests.conftest import train_tiny_run``.
"""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("MPLBACKEND", "Agg")
# Notebook kernels (nbval) run "python" from PATH: make it this environment's Python.
os.environ["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])

import pytest  # noqa: E402

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPOSITORY_ROOT.parent / "shared" / "data"


# ---------------------------------------------------------------------------------
# a tiny real data set and run: 16×16 images of two colour bands, six colour labels
# ---------------------------------------------------------------------------------
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 180, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 20),
    "black": (10, 10, 10),
    "white": (245, 245, 245),
}


def colour_bands(top: str, bottom: str, *, size: int = 16, noise: int = 12, seed: int = 0):
    """A ``(size, size, 3)`` uint8 image: ``top`` colour above, ``bottom`` below."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), dtype=np.int64)
    image[: size // 2] = COLOURS[top]
    image[size // 2 :] = COLOURS[bottom]
    image += rng.integers(-noise, noise + 1, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def colour_dataset(num_images: int, *, size: int = 16, seed: int = 0):
    """Images of two colour bands labelled with their colours (one or two labels each)."""
    import numpy as np

    from workbench.data.datasets import MultiLabelDataset
    from workbench.data.labels import Vocabulary

    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    images = np.empty((num_images, size, size, 3), dtype=np.uint8)
    label_sets = []
    for position in range(num_images):
        # neighbours in the list pair up more often, so PMI has structure
        first = int(rng.integers(len(names)))
        second = (first + int(rng.choice([0, 1, 1, 2]))) % len(names)
        images[position] = colour_bands(names[first], names[second], size=size, seed=seed * 100_003 + position)
        label_sets.append(tuple(dict.fromkeys([names[first], names[second]])))
    return MultiLabelDataset(
        image_paths=("",) * num_images,
        label_sets=tuple(label_sets),
        vocabulary=Vocabulary(tuple(names)),
        images=images,
        name="colour bands",
    )


def pmi_embedding(dataset, *, dim: int = 4):
    """The workbench's spectral PMI embedding (smoothed PMI, |eigenvalues|) of a data set."""
    from workbench.method.cooccurrence import count_cooccurrence
    from workbench.method.embed import embed_labels

    counts = count_cooccurrence(dataset.labels, dataset.vocabulary)
    return embed_labels(counts, embedding_dim=dim, policy="smooth", negative="abs", random_state=0)


def training_split(dataset, config):
    """The training part of the split :func:`workbench.learning.training.train` makes with ``config``.

    An embedding for a run is counted on it: ``train`` refuses one counted on validation images.
    """
    return dataset.split(validation_fraction=config.validation_fraction, random_state=config.split_random_state)[0]


def train_tiny_run(out_dir: Path, *, epochs: int = 6, num_images: int = 192) -> Path:
    """Train a real PMI-head run on colour bands (16×16, two conv blocks); return its folder."""
    from workbench.learning.config import ModelConfig, TrainConfig
    from workbench.learning.training import train

    dataset = colour_dataset(num_images)
    config = TrainConfig(
        head="pmi",
        epochs=epochs,
        batch_size=32,
        learning_rate=3e-3,
        workers=1,
        model=ModelConfig(image_size=16, width=8, depth=2, augment=False, dropout=0.0, batchnorm_momentum=0.8),
    )
    train(dataset, config=config, out_dir=out_dir, embedding=pmi_embedding(training_split(dataset, config)), verbose=0)
    return Path(out_dir)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The folder of a :func:`train_tiny_run` run, trained once per test module."""
    pytest.importorskip("keras")
    return train_tiny_run(tmp_path_factory.mktemp("tiny") / "run")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


# ---------------------------------------------------------------------------------
# a full disk: a tmpfs of a chosen size, or one filled up at the moment of a chosen write
# ---------------------------------------------------------------------------------
PAGE = 4096  # tmpfs counts whole pages


@pytest.fixture()
def small_disk(tmp_path):
    """A tmpfs of a chosen size (a real full disk: ENOSPC at whatever write comes next); skipped without mount rights."""
    import subprocess

    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = []

    def resize(kilobytes: int):
        options = f"size={kilobytes}k" if not mounted else f"remount,size={kilobytes}k"
        command = ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)] if not mounted else \
            ["mount", "-o", options, str(folder)]
        if subprocess.run(command, capture_output=True).returncode != 0:
            pytest.skip("mounting a tmpfs needs root (a full disk is emulated with a file-size limit elsewhere)")
        mounted.append(True)
        return folder

    yield resize
    if mounted:
        subprocess.run(["umount", str(folder)], capture_output=True)


@pytest.fixture(scope="session")
def mount_namespace(tmp_path_factory) -> list:
    """The command prefix that runs a command in a mount namespace of its own, where it may mount a tmpfs.

    ``unshare -m`` where the tests run as root, ``unshare -rm`` (a user namespace) where they
    do not; skips the test when neither may mount. The mount is gone with the namespace:
    nothing is left mounted on the machine, whatever happens to the test.
    """
    import shutil
    import subprocess

    probe = tmp_path_factory.mktemp("probe")
    if shutil.which("unshare") and shutil.which("mount"):
        for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
            check = subprocess.run([*prefix, "mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(probe)],
                                   capture_output=True)
            if check.returncode == 0:
                return prefix
    pytest.skip("no mount namespace may mount a tmpfs here (needs root or unprivileged user namespaces)")


def full_disk_at_every_write(namespace: list, work: Path, job: dict, *, mode: str, pages: int = 0) -> dict:
    """Run ``job`` on a tmpfs that is full at each of its writes in turn, each attempt followed by a rerun with room.

    Parameters
    ----------
    namespace : list of str
        From the ``mount_namespace`` fixture.
    work : Path
        A folder on the real disk: the tmpfs is mounted at ``work/disk``, the copies go to ``work/copies``.
    job : dict
        ``{"kind": "cli", "arguments": [... "{out}" ...]}`` (``workbench ARGUMENTS`` in the driver's
        process) or ``{"kind": "store", "rounds": R, "per_round": N, "run": PATH}`` (what R
        ``classify --store`` calls do: register the run, store N results; rounds already stored are skipped).
    mode : {"writes", "pages"}
        ``"writes"``: the disk fills up at the moment each atomic write of an uninterrupted run
        begins, leaving half of that file's pages free (so a larger file fails half-written);
        ``"pages"`` (for writers that do not go through :mod:`workbench._io`, such as SQLite): the
        disk has 0, 1, 2, … free pages from the start, until an attempt succeeds (at most ``pages``).

    Returns
    -------
    dict
        ``reference`` (the uninterrupted run: ``rc``, ``writes``: ``[path, pages]``) and
        ``attempts``: per attempt ``trigger``, ``target`` (the write the disk filled at), ``rc``, ``err``,
        ``failed`` (atomic writes that raised ``OSError``), ``leftovers`` (temporaries in the output),
        ``rerun_rc``, ``rerun_err``; copies of each output in ``work/copies/<n>/{attempt,rerun}`` and
        ``work/copies/reference``.
    """
    import json
    import subprocess
    import sys

    spec = work / "full-disk.json"
    spec.write_text(json.dumps({"disk": str(work / "disk"), "copies": str(work / "copies"), "job": job, "mode": mode,
                                "pages": pages}))
    (work / "disk").mkdir(exist_ok=True)
    code = f"import sys; sys.path.insert(0, {str(REPOSITORY_ROOT)!r}); from tests.conftest import _full_disk_driver; " \
           f"_full_disk_driver({str(spec)!r})"
    completed = subprocess.run([*namespace, sys.executable, "-c", code], capture_output=True, text=True, timeout=900,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TF_DETERMINISTIC_OPS": "1"})
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads((work / "copies" / "report.json").read_text())


def _full_disk_driver(spec_path: str) -> None:
    """Inside a mount namespace: see :func:`full_disk_at_every_write`. Writes ``copies/report.json``."""
    import contextlib
    import io
    import json
    import shutil
    import subprocess

    spec = json.loads(Path(spec_path).read_text())
    disk, copies = Path(spec["disk"]), Path(spec["copies"])
    copies.mkdir(parents=True, exist_ok=True)
    room = 64 * 1024  # pages: 256 MiB, never reached
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={room * PAGE // 1024}k", "tmpfs", str(disk)], check=True)
    out = disk / "out"
    filler = disk / "filler"

    def free_pages() -> int:
        status = os.statvfs(disk)
        return status.f_bavail * status.f_frsize // PAGE

    def fill(leave: int) -> None:
        """Take every free page but ``leave`` (another program filled the disk)."""
        with open(filler, "ab") as stream:
            os.posix_fallocate(stream.fileno(), 0, os.fstat(stream.fileno()).st_size + (free_pages() - leave) * PAGE)

    import workbench._io as _io

    original = _io.atomic_path
    trace = {"count": 0, "trigger": None, "leave": 0, "writes": [], "failed": []}

    @contextlib.contextmanager
    def traced(path, **options):
        trace["count"] += 1
        if trace["count"] == trace["trigger"]:
            fill(trace["leave"])
        try:
            with original(path, **options) as temporary:
                yield temporary
        except OSError:
            trace["failed"].append(str(Path(path).relative_to(out)) if Path(path).is_relative_to(out) else str(path))
            raise
        if Path(path).is_relative_to(out):
            trace["writes"].append([str(Path(path).relative_to(out)), -(-Path(path).stat().st_size // PAGE)])

    _io.atomic_path = traced
    for module in list(sys.modules.values()):  # modules that imported the name already
        if getattr(module, "atomic_path", None) is original:
            module.atomic_path = traced

    def run_job() -> tuple[int, str]:
        job = spec["job"]
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            if job["kind"] == "cli":
                from workbench.cli import main

                status = main([argument.replace("{out}", str(out)) for argument in job["arguments"]])
            else:
                status = _store_job(out / "results.sqlite", job)
        return status, stderr.getvalue()

    def copy(name: str) -> None:
        target = copies / name
        shutil.rmtree(target, ignore_errors=True)
        if out.exists():
            shutil.copytree(out, target)

    status, err = run_job()
    report = {"reference": {"rc": status, "err": err, "writes": trace["writes"]}, "attempts": []}
    copy("reference")
    if spec["mode"] == "writes":
        triggers = [(number, path, pages // 2) for number, (path, pages) in enumerate(trace["writes"], start=1)]
    else:
        triggers = [(None, None, pages) for pages in range(spec["pages"] + 1)]
    for attempt, (number, target, leave) in enumerate(triggers):
        shutil.rmtree(out, ignore_errors=True)
        filler.unlink(missing_ok=True)
        trace.update(count=0, trigger=number, leave=leave, writes=[], failed=[])
        if number is None:
            fill(leave)
        status, err = run_job()
        record = {"trigger": number if number is not None else leave, "target": target, "rc": status, "err": err,
                  "failed": list(trace["failed"]),
                  "leftovers": sorted(str(path.relative_to(out)) for path in out.rglob(".*")) if out.exists() else []}
        copy(f"{attempt}/attempt")
        filler.unlink(missing_ok=True)  # room again
        trace.update(count=0, trigger=None)
        record["rerun_rc"], record["rerun_err"] = run_job()
        copy(f"{attempt}/rerun")
        report["attempts"].append(record)
        if number is None and status == 0:
            break  # this many free pages are enough: every page of the job was a failing one before
    (copies / "report.json").write_text(json.dumps(report, indent=1))


def _store_job(path: Path, job: dict) -> int:
    """``job["rounds"]`` classify-like calls on one store: register the run, store ``per_round`` results (skipping stored rounds)."""
    import hashlib
    import sqlite3

    import numpy as np

    from workbench.apps.classify import ClassificationResult
    from workbench.apps.store import ResultStore
    from workbench.data.labels import Vocabulary
    from workbench.method.embedding import LabelEmbedding

    rng = np.random.default_rng(0)
    embedding = LabelEmbedding(vocabulary=Vocabulary(tuple(f"label {i}" for i in range(20))),
                               vectors=rng.normal(size=(20, 8)).astype(np.float32), eigenvalues=np.linspace(3, 1, 8),
                               label_counts=np.arange(20) + 1, settings={})
    try:
        for number in range(job["rounds"]):
            names = [f"round-{number}-{i}.png" for i in range(job["per_round"])]
            results = [ClassificationResult(image=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                                            labels=tuple((f"label {(i + k) % 20}", 0.9 - 0.1 * k) for k in range(5)),
                                            setting="top:5")
                       for i, name in enumerate(names)]
            store = ResultStore(path, timeout=5)
            if store.history(results[0].sha256):
                continue  # stored before the disk filled up
            store.add_classifications(results, run_id=store.add_run(job["run"], embedding=embedding, head="pmi"))
    except (ValueError, sqlite3.Error, OSError) as error:  # what 'workbench classify' catches: exit 3
        print(f"could not store the results in {path} ({str(error).splitlines()[0]})", file=sys.stderr)
        return 3
    return 0


@pytest.fixture(scope="module")
def private_glyph_cache(tmp_path_factory):
    """A module's own ``XDG_CACHE_HOME``, so the emoji glyph disk cache of its tests stays out of the user's home."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("cache")
        patch.setenv("XDG_CACHE_HOME", str(folder))
        yield folder
