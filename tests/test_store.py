"""The SQLite result store: round trips, queries, concurrent writers, crashes mid-write."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.apps.classify import ClassificationResult
from workbench.data.labels import Vocabulary
from workbench.method.embedding import LabelEmbedding
from workbench.apps.store import SCHEMA_VERSION, ResultStore, default_store_path

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def embedding(num_labels: int = 5, dim: int = 3, seed: int = 0) -> LabelEmbedding:
    rng = np.random.default_rng(seed)
    return LabelEmbedding(
        vocabulary=Vocabulary(tuple(f"label {i}" for i in range(num_labels)), groups=tuple("ab"[i % 2] for i in range(num_labels))),
        vectors=rng.normal(size=(num_labels, dim)).astype(np.float32),
        eigenvalues=np.array([3.5, -1.25, 0.1][:dim]),
        label_counts=np.arange(num_labels, dtype=np.int64) * 7,
        settings={"policy": "zero"},
    )


def result(name: str, labels, *, setting="top:3") -> ClassificationResult:
    return ClassificationResult(image=name, sha256=digest(name), labels=tuple(labels), setting=setting)


def test_schema_wal_and_version(tmp_path):
    store = ResultStore(tmp_path / "sub" / "results.sqlite")
    assert store.schema_version == SCHEMA_VERSION
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"meta", "runs", "label_vectors", "classifications", "classification_labels"} <= tables
    assert default_store_path(tmp_path) == tmp_path / "results.sqlite"
    ResultStore(store.path)  # reopening is fine


def test_refuses_files_that_are_not_stores(tmp_path):
    text = tmp_path / "notes.sqlite"
    text.write_text("hello, not a database " * 100)
    with pytest.raises(ValueError, match="not a result store"):
        ResultStore(text)
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE people (name TEXT)")
    with pytest.raises(ValueError, match="not a result store"):
        ResultStore(other)
    newer = tmp_path / "newer.sqlite"
    ResultStore(newer)
    with sqlite3.connect(newer) as connection:
        connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ValueError, match="newer workbench"):
        ResultStore(newer)
    with pytest.raises(ValueError, match="folder"):
        ResultStore(tmp_path)


def test_label_vectors_round_trip_exactly(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    source = embedding(num_labels=40, dim=3, seed=3)
    run_dir = tmp_path / "run"
    run_id = store.add_run(run_dir, embedding=source, head="pmi", image_size=32, settings={"epochs": 2})
    assert store.add_run(run_dir, embedding=source) == run_id  # registered once per path
    assert store.run_id(run_dir) == run_id and store.run_id(tmp_path / "elsewhere") is None
    names, vectors, eigenvalues = store.label_vectors(run_id)
    assert names == list(source.vocabulary.names)
    assert vectors.dtype == np.float32 and np.array_equal(vectors, source.vectors)
    assert np.array_equal(eigenvalues, source.eigenvalues)
    with sqlite3.connect(store.path) as connection:
        counts = [row[0] for row in connection.execute("SELECT label_count FROM label_vectors ORDER BY label_index")]
    assert counts == source.label_counts.tolist()
    (run,) = store.runs()
    assert run["run_id"] == run_id and run["path"] == str(run_dir.resolve()) and run["head"] == "pmi"
    assert (run["num_labels"], run["embedding_dim"], run["image_size"]) == (40, 3, 32)
    assert run["settings"] == {"epochs": 2} and run["num_classifications"] == 0
    sigmoid = store.add_run(tmp_path / "sigmoid", vocabulary=source.vocabulary, head="sigmoid")
    assert store.label_vectors(sigmoid) == (list(source.vocabulary.names), None, None)
    with pytest.raises(ValueError, match="embedding"):
        store.add_run(tmp_path / "x")
    with pytest.raises(ValueError, match="registered with 40 labels"):
        store.add_run(run_dir, embedding=embedding(num_labels=4))
    with pytest.raises(KeyError):
        store.label_vectors(999)


def test_classifications_history_and_label_queries(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_a = store.add_run(tmp_path / "a", embedding=embedding())
    run_b = store.add_run(tmp_path / "b", embedding=embedding(seed=1))
    failed = ClassificationResult(image="broken.png", error="Not an image.")
    ids = store.add_classifications(
        [
            result("cat.png", [("label 1", 0.9), ("label 2", 0.4)]),
            failed,
            result("dog.png", [("label 2", 0.8), ("label 1", 0.3)]),
        ],
        run_id=run_a,
    )
    assert len(ids) == 2  # the failed image is not stored
    store.add_classifications(
        [{"image": "cat.png", "sha256": digest("cat.png"), "setting": "threshold:0.5",
          "labels": [{"label": "label 1", "similarity": 0.7}]}],
        run_id=run_b,
    )
    history = store.history(digest("cat.png"))
    assert [(h["run_id"], h["setting"]) for h in history] == [(run_a, "top:3"), (run_b, "threshold:0.5")]
    assert history[0]["labels"] == [{"label": "label 1", "similarity": 0.9}, {"label": "label 2", "similarity": 0.4}]
    assert history[0]["image"] == "cat.png" and history[0]["run_path"] == str((tmp_path / "a").resolve())
    assert history[0]["classified_at"].endswith("+00:00")
    assert store.history(digest("nothing")) == []

    as_label_1 = store.images_classified_as("label 1")
    assert [(row["image"], row["similarity"], row["rank"]) for row in as_label_1] == [
        ("cat.png", 0.9, 0), ("cat.png", 0.7, 0), ("dog.png", 0.3, 1)
    ]
    assert [row["image"] for row in store.images_classified_as("label 1", min_similarity=0.5)] == ["cat.png", "cat.png"]
    assert [row["run_id"] for row in store.images_classified_as("label 1", run_id=run_b)] == [run_b]
    assert store.images_classified_as("label 4") == []
    assert {run["run_id"]: run["num_classifications"] for run in store.runs()} == {run_a: 2, run_b: 1}

    with pytest.raises(ValueError, match="SHA-256"):
        store.history("abc")
    with pytest.raises(ValueError, match="SHA-256"):
        store.add_classifications([ClassificationResult(image="x", sha256="xyz", labels=())], run_id=run_a)
    with pytest.raises(KeyError, match="No run"):
        store.add_classifications([result("e.png", [])], run_id=12345)
    with pytest.raises(ValueError, match="NaN"):
        store.add_classifications([result("n.png", [("label 1", float("nan"))])], run_id=run_a)
    assert store.count_classifications() == 3


def test_a_failure_inside_a_transaction_keeps_committed_rows(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_id = store.add_run(tmp_path / "run", embedding=embedding())
    store.add_classifications([result("kept.png", [("label 0", 0.5)])], run_id=run_id)
    with pytest.raises(RuntimeError, match="power cut"):
        with store._connect() as connection, connection:
            connection.execute(
                "INSERT INTO classifications (sha256, image, run_id, setting, labels, classified_at) "
                "VALUES (?, 'lost.png', ?, 'top:1', '[]', 'now')",
                (digest("lost.png"), run_id),
            )
            raise RuntimeError("power cut")
    assert [row["image"] for row in store.images_classified_as("label 0")] == ["kept.png"]
    assert store.count_classifications() == 1 and store.integrity_check() == "ok"


WRITER = textwrap.dedent(
    """
    import hashlib, itertools, sys
    from workbench.apps.classify import ClassificationResult
    from workbench.apps.store import ResultStore

    path, run_id, tag, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    store = ResultStore(path, timeout=60)
    for number in itertools.count() if count < 0 else range(count):  # count < 0: until killed
        names = [f"{tag}-{number}-{i}.png" for i in range(5)]
        store.add_classifications(
            [ClassificationResult(image=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                                  labels=(("label 0", 0.5), ("label 1", 0.25), ("label 2", 0.125)), setting="top:3")
             for name in names],
            run_id=run_id,
        )
        print(number + 1, flush=True)
    """
)


def _writer(store_path: Path, run_id: int, tag: str, count: int) -> subprocess.Popen:
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT))
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(store_path), str(run_id), tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def test_two_processes_and_threads_write_concurrently(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_id = store.add_run(tmp_path / "run", embedding=embedding())
    writers = [_writer(store.path, run_id, tag, 25) for tag in ("p1", "p2")]

    def thread_writer(tag):
        for number in range(10):
            store.add_classifications([result(f"{tag}-{number}.png", [("label 3", 0.5)])], run_id=run_id)

    threads = [threading.Thread(target=thread_writer, args=(f"t{i}",)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for writer in writers:
        out, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    assert store.count_classifications() == 2 * 25 * 5 + 2 * 10
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM classification_labels").fetchone()[0] == 2 * 25 * 5 * 3 + 20
    assert store.integrity_check() == "ok"


def test_killed_writer_loses_nothing_committed(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_id = store.add_run(tmp_path / "run", embedding=embedding())
    writer = _writer(store.path, run_id, "k", -1)
    committed = 0
    try:
        while committed < 15:
            line = writer.stdout.readline()
            assert line, writer.stderr.read()
            committed = int(line)
        os.kill(writer.pid, signal.SIGKILL)  # most likely in the middle of the next transaction
    finally:
        writer.kill()
        writer.wait(timeout=30)
    count = store.count_classifications()
    assert count >= committed * 5 and count % 5 == 0  # every committed batch, and no partial one
    with sqlite3.connect(store.path) as connection:
        assert connection.execute("SELECT COUNT(*) FROM classification_labels").fetchone()[0] == count * 3
    assert store.integrity_check() == "ok"


def test_killed_during_an_open_transaction(tmp_path):
    store = ResultStore(tmp_path / "results.sqlite")
    run_id = store.add_run(tmp_path / "run", embedding=embedding())
    store.add_classifications([result("before.png", [("label 0", 0.9)])], run_id=run_id)
    script = textwrap.dedent(
        f"""
        import sys, time
        from workbench.apps.store import ResultStore
        store = ResultStore({str(store.path)!r})
        with store._connect() as connection, connection:
            for i in range(500):
                connection.execute(
                    "INSERT INTO classifications (sha256, image, run_id, setting, labels, classified_at) "
                    "VALUES (?, ?, {run_id}, 'top:1', '[]', 'now')", ("0" * 64, f"uncommitted-{{i}}.png"))
            print("in transaction", flush=True)
            time.sleep(60)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT)))
    try:
        assert child.stdout.readline().strip() == "in transaction", child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=30)
    start = time.monotonic()
    store.add_classifications([result("after.png", [("label 0", 0.8)])], run_id=run_id)  # the lock is gone
    assert time.monotonic() - start < 10
    assert [row["image"] for row in store.images_classified_as("label 0")] == ["before.png", "after.png"]
    assert store.count_classifications() == 2 and store.integrity_check() == "ok"



FIRST_WRITER = textwrap.dedent(
    """
    import glob, hashlib, os, sys, time
    import numpy as np
    from workbench.apps.classify import ClassificationResult
    from workbench.apps.store import ResultStore
    from workbench.data.labels import Vocabulary
    from workbench.method.embedding import LabelEmbedding

    run_dir, tag, writers, paths = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
    embedding = LabelEmbedding(vocabulary=Vocabulary(("a", "b", "c")), vectors=np.eye(3, dtype=np.float32),
                               eigenvalues=np.ones(3), label_counts=np.ones(3, dtype=np.int64), settings={})
    for path in paths:
        open(f"{path}.ready-{tag}", "w").close()  # a barrier: every writer opens the new store at the same moment
        while len(glob.glob(f"{path}.ready-*")) < writers:
            time.sleep(0.0005)
        try:  # what 'workbench classify RUN IMAGES --store PATH' does: register the run, store the results
            store = ResultStore(path, timeout=60)
            run_id = store.add_run(run_dir, embedding=embedding, head="pmi")
            for round_ in range(10):
                names = [f"{tag}-{round_}-{i}.png" for i in range(10)]
                store.add_classifications(
                    [ClassificationResult(image=name, sha256=hashlib.sha256(name.encode()).hexdigest(),
                                          labels=(("a", 0.5), ("b", 0.25)), setting="top:2") for name in names],
                    run_id=run_id)
        except Exception as error:
            print(f"{path}: {type(error).__name__}: {error}", flush=True)
    """
)



def test_eight_first_writers_of_a_new_store_all_wait_and_none_loses_a_write(tmp_path):
    """Eight processes open a store file that does not exist yet at the same moment (``parallel -j8 classify --store``).

    Each registers the run and stores 10 rounds of 10 results, in three new stores one after the other.
    For the first, this test plays a ninth writer caught creating it (its write lock held while the
    eight start): SQLite answers their WAL switch "database is locked" at once, without waiting, so
    before the fix every one of them failed. In the other two the eight meet only each other. Creating
    the schema and switching to WAL must queue on the busy timeout like any other write: 800 rows each.
    """
    paths = [tmp_path / f"new-{number}.sqlite" for number in range(3)]
    ninth = sqlite3.connect(paths[0], isolation_level=None)  # the file now exists, empty, in rollback mode
    ninth.execute("BEGIN IMMEDIATE")
    environment = dict(os.environ, PYTHONPATH=str(REPOSITORY_ROOT))
    writers = [subprocess.Popen([sys.executable, "-c", FIRST_WRITER, str(tmp_path / "run"), f"w{n}", "8", *map(str, paths)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
               for n in range(8)]
    try:
        deadline = time.monotonic() + 120
        while len(list(tmp_path.glob("new-0.sqlite.ready-*"))) < 8 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)  # every writer is at its first attempt, or past it
    finally:
        ninth.execute("ROLLBACK")
        ninth.close()
    errors = []
    for writer in writers:
        out, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        errors += out.splitlines()
    assert errors == []
    for path in paths:
        store = ResultStore(path)
        assert store.count_classifications() == 8 * 100
        assert len(store.runs()) == 1 and store.integrity_check() == "ok"


def test_a_store_locked_past_the_timeout_says_so_not_that_the_disk_failed(tmp_path):
    """A writer that waits the whole busy timeout is told the store is locked and for how long, nothing about the disk."""
    path = tmp_path / "held.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # a first writer that never lets go
    try:
        start = time.monotonic()
        with pytest.raises(ValueError, match=r"still locked by another writer after waiting 0.5 s") as caught:
            ResultStore(path, timeout=0.5)
        assert time.monotonic() - start >= 0.5, "it waited on the timeout instead of failing at once"
        assert "disk" not in str(caught.value) and "\n" not in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store = ResultStore(path)
    run_id = store.add_run(tmp_path / "run", embedding=embedding())
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # now the store exists, in WAL mode: a write waits, then says so
    try:
        with pytest.raises(ValueError, match="still locked by another writer"):
            ResultStore(path, timeout=0.3).add_classifications([result("x.png", [("label 0", 0.5)])], run_id=run_id)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert store.count_classifications() == 0
