"""The SQLite results store: label embeddings of runs and the classifications made with them.

One SQLite file (``RUN_DIR/results.sqlite`` by default, see :func:`default_store_path`)
holds

* ``meta`` — the schema version (also in ``PRAGMA user_version``) and who created it;
* ``runs`` — one row per run directory: head, image size, label count, embedding
  dimension and eigenvalues (float64 blob), when first registered;
* ``label_vectors`` — per run and label: the name, the vector (float32 blob, little
  endian) and the label's image count;
* ``classifications`` — one row per stored classification: image SHA-256, display
  name, run, setting (``"top:5"``, ``"threshold:0.3"``), the ranked labels with their
  similarities as JSON, and a UTC timestamp;
* ``classification_labels`` — the same labels one row each (indexed by label and
  similarity, so :meth:`ResultStore.images_classified_as` does not scan JSON).

Every write is one transaction (``with connection:``, ``BEGIN IMMEDIATE`` so two
writers queue on the busy timeout instead of failing), the journal is in WAL mode
with ``synchronous=FULL``: a crash or a killed process mid-write rolls back only the
unfinished transaction, never one already committed. Each call opens its own
connection, so a store object can be shared by threads and used by several
processes at once.

Creating a store is where writers meet first: switching a new file to WAL reads it,
then upgrades to a write lock, and SQLite answers "database is locked" at once (its
deadlock rule skips the busy handler) to every writer but one that tries at the same
moment. The switch and the schema are therefore retried until the busy timeout has
passed, like any other write; a writer that still finds the store locked then is told
so ("still locked by another writer after … s"), not that the disk failed.
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import json
import sqlite3
import time
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

__all__ = ["ResultStore", "default_store_path", "SCHEMA_VERSION", "STORE_FILE_NAME"]

#: Version of the table layout below; a store written by a newer layout is refused.
SCHEMA_VERSION = 1

#: File name of the default store inside a run directory.
STORE_FILE_NAME = "results.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    head TEXT,
    image_size INTEGER,
    num_labels INTEGER NOT NULL,
    embedding_dim INTEGER,
    eigenvalues BLOB,
    settings TEXT NOT NULL DEFAULT '{}',
    registered_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS label_vectors (
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    label_index INTEGER NOT NULL,
    label TEXT NOT NULL,
    vector BLOB,
    label_count INTEGER,
    PRIMARY KEY (run_id, label_index),
    UNIQUE (run_id, label)
);
CREATE TABLE IF NOT EXISTS classifications (
    classification_id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    image TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    setting TEXT NOT NULL,
    labels TEXT NOT NULL,
    classified_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS classifications_by_sha256 ON classifications (sha256);
CREATE TABLE IF NOT EXISTS classification_labels (
    classification_id INTEGER NOT NULL REFERENCES classifications(classification_id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    label TEXT NOT NULL,
    similarity REAL NOT NULL,
    PRIMARY KEY (classification_id, rank)
);
CREATE INDEX IF NOT EXISTS classification_labels_by_label ON classification_labels (label, similarity);
"""

_SHA256_DIGITS = frozenset("0123456789abcdef")


def default_store_path(run_dir: str | Path) -> Path:
    """``RUN_DIR/results.sqlite``."""
    return Path(run_dir) / STORE_FILE_NAME


def _now() -> str:
    return _datetime.datetime.now(_datetime.timezone.utc).isoformat(timespec="microseconds")


def _is_lock_error(error: sqlite3.Error) -> bool:
    """Whether SQLite's error means another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED)."""
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+
    if code is not None:
        return code & 0xFF in (5, 6)
    text = str(error).lower()
    return "locked" in text or "busy" in text


def _check_sha256(sha256: str) -> str:
    text = str(sha256).lower()
    if len(text) != 64 or not set(text) <= _SHA256_DIGITS:
        raise ValueError(f"{sha256!r} is not a SHA-256 hex digest (64 hex digits).")
    return text


class ResultStore:
    """Classifications and label embeddings in one SQLite file.

    Parameters
    ----------
    path : path-like
        The SQLite file; created (with its folder) on first use.
    timeout : float
        Seconds a writer waits for another writer's transaction before giving up.

    Examples
    --------
    >>> store = ResultStore(tmp_path / "results.sqlite")          # doctest: +SKIP
    >>> run_id = store.add_run("runs/pmi", embedding=run.embedding, head="pmi")
    >>> store.add_classifications(results, run_id=run_id)
    >>> store.images_classified_as("dog", min_similarity=0.5)
    """

    def __init__(self, path: str | Path, *, timeout: float = 30.0):
        self.path = Path(path)
        if self.path.is_dir():
            raise ValueError(f"{self.path} is a folder; give the path of a .sqlite file for the result store.")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds; got {timeout!r}.")
        self.timeout = float(timeout)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._initialise()

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # -- connections ------------------------------------------------------------------
    def _locked(self, error: sqlite3.Error) -> ValueError:
        """The one-line error for a store that other writers kept locked past the timeout."""
        return ValueError(
            f"{self.path}: the result store is still locked by another writer after waiting {self.timeout:g} s ({error}); "
            "nothing was written: try again when the other writers are done, or give a longer timeout."
        )

    def _retry_while_locked(self, action, *, deadline: float):
        """``action()``, retried while SQLite says the store is locked and ``deadline`` (monotonic) is not reached.

        SQLite skips its busy handler where waiting could deadlock (a reader that wants to
        write while another writer holds the write lock); it answers "database is locked" at
        once, and the only way on is to let go and try again.
        """
        pause = 0.002
        while True:
            try:
                return action()
            except sqlite3.OperationalError as error:
                left = deadline - time.monotonic()
                if not _is_lock_error(error) or left <= 0:
                    raise
            time.sleep(min(pause, left))
            pause = min(2 * pause, 0.05)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection (WAL, FULL sync, foreign keys, busy timeout); closed afterwards."""
        deadline = time.monotonic() + self.timeout
        try:
            connection = sqlite3.connect(self.path, timeout=self.timeout, isolation_level="IMMEDIATE")
        except sqlite3.Error as error:
            raise ValueError(f"{self.path}: cannot open the result store ({error}).") from None
        try:

            def configure() -> str:
                connection.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                connection.execute("PRAGMA synchronous = FULL")
                connection.execute("PRAGMA foreign_keys = ON")
                return mode

            try:
                mode = self._retry_while_locked(configure, deadline=deadline)
            except sqlite3.OperationalError as error:  # a full disk, an I/O error, a lock: not the file's fault
                if _is_lock_error(error):
                    raise self._locked(error) from None
                raise ValueError(f"{self.path}: cannot use the result store now ({error}); the file is left as it is: "
                                 "free disk space or check the disk, then try again.") from None
            except sqlite3.DatabaseError as error:
                raise ValueError(f"{self.path}: not a result store ({error}); give a new file name, or move this file away.") from None
            if str(mode).lower() != "wal":
                raise ValueError(f"{self.path}: the file system does not support SQLite's WAL mode; put the store on a local disk.")
            try:
                yield connection
            except sqlite3.OperationalError as error:  # a write that waited the whole busy timeout
                if _is_lock_error(error):
                    raise self._locked(error) from None
                raise
        finally:
            connection.close()

    def _initialise(self) -> None:
        with self._connect() as connection:
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path}: written by a newer workbench (schema {version}, this one reads {SCHEMA_VERSION}); upgrade pmi-workbench."
                )
            if version == SCHEMA_VERSION:
                return
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables and "meta" not in tables:
                raise ValueError(f"{self.path}: an SQLite file that is not a result store; give a new file name.")
            from workbench import __version__

            connection.execute("BEGIN IMMEDIATE")  # waits on the busy timeout while another first writer creates it
            if connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                connection.rollback()  # that writer has made the schema meanwhile
                return
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?), ('created_by', ?)",
                    (str(SCHEMA_VERSION), f"pmi-workbench {__version__}"),
                )
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.commit()
            except BaseException:
                connection.rollback()
                raise

    @property
    def schema_version(self) -> int:
        """The schema version recorded in the file."""
        with self._connect() as connection:
            return int(connection.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])

    # -- runs and label embeddings ----------------------------------------------------
    def add_run(
        self,
        path: str | Path,
        *,
        num_labels: int | None = None,
        embedding=None,
        vocabulary=None,
        head: str | None = None,
        image_size: int | None = None,
        settings: dict | None = None,
    ) -> int:
        """Register a run (once per resolved path) and its label vectors; return its ``run_id``.

        Parameters
        ----------
        path : path-like
            The run directory (its resolved absolute path identifies the run).
        embedding : LabelEmbedding, optional
            Its vocabulary, ``(C, k)`` float32 vectors, eigenvalues and label counts are
            stored. A run without one (sigmoid head) needs ``vocabulary``.
        vocabulary : Vocabulary, optional
            The labels, when there is no embedding.
        head, image_size, settings
            Recorded with the run.

        Returns
        -------
        int
            The run's id. Registering the same path again returns the same id and
            leaves the stored vectors as they are.
        """
        if embedding is None and vocabulary is None:
            raise ValueError("add_run needs the run's embedding or, for a sigmoid head, its vocabulary.")
        if embedding is not None:
            vocabulary = embedding.vocabulary
            vectors = np.ascontiguousarray(embedding.vectors, dtype="<f4")
            eigenvalues = np.ascontiguousarray(embedding.eigenvalues, dtype="<f8")
            counts = getattr(embedding, "label_counts", None)
            if vectors.shape[0] != len(vocabulary):
                raise ValueError(f"{vectors.shape[0]} label vectors for {len(vocabulary)} labels; give one vector per label.")
        else:
            vectors = eigenvalues = counts = None
        names = list(vocabulary.names)
        if num_labels is not None and num_labels != len(names):
            raise ValueError(f"num_labels={num_labels} but the vocabulary has {len(names)} labels.")
        key = str(Path(path).resolve())
        with self._connect() as connection, connection:
            connection.execute(
                "INSERT INTO runs (path, head, image_size, num_labels, embedding_dim, eigenvalues, settings, registered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO NOTHING",
                (
                    key,
                    head,
                    None if image_size is None else int(image_size),
                    len(names),
                    None if vectors is None else int(vectors.shape[1]),
                    None if eigenvalues is None else eigenvalues.tobytes(),
                    json.dumps(settings or {}, default=str),
                    _now(),
                ),
            )
            run_id, stored_labels = connection.execute("SELECT run_id, num_labels FROM runs WHERE path = ?", (key,)).fetchone()
            if stored_labels != len(names):
                raise ValueError(
                    f"{key} is registered with {stored_labels} labels but now has {len(names)}; use a new store for the retrained run."
                )
            connection.executemany(
                "INSERT OR IGNORE INTO label_vectors (run_id, label_index, label, vector, label_count) VALUES (?, ?, ?, ?, ?)",
                (
                    (
                        run_id,
                        position,
                        name,
                        None if vectors is None else vectors[position].tobytes(),
                        None if counts is None else int(counts[position]),
                    )
                    for position, name in enumerate(names)
                ),
            )
        return int(run_id)

    def add_trained_run(self, run, *, path: str | Path | None = None) -> int:
        """Register a :class:`workbench.learning.runs.TrainedRun` (its folder, head, image size, embedding or vocabulary).

        ``path`` defaults to ``run.run_dir``.
        """
        config = getattr(run, "config", None)
        return self.add_run(
            path if path is not None else run.run_dir,
            embedding=getattr(run, "embedding", None),
            vocabulary=run.vocabulary,
            head=getattr(run, "head", None),
            image_size=getattr(run, "image_size", None),
            settings=config.to_dict() if hasattr(config, "to_dict") else None,
        )

    def run_id(self, path: str | Path) -> int | None:
        """The id of the run registered for ``path``, or None."""
        with self._connect() as connection:
            row = connection.execute("SELECT run_id FROM runs WHERE path = ?", (str(Path(path).resolve()),)).fetchone()
        return None if row is None else int(row[0])

    def runs(self) -> list[dict]:
        """Every registered run: ``run_id, path, head, image_size, num_labels, embedding_dim, settings, registered_at, num_classifications``."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT r.run_id, r.path, r.head, r.image_size, r.num_labels, r.embedding_dim, r.settings, r.registered_at, "
                "(SELECT COUNT(*) FROM classifications c WHERE c.run_id = r.run_id) "
                "FROM runs r ORDER BY r.run_id"
            ).fetchall()
        keys = ("run_id", "path", "head", "image_size", "num_labels", "embedding_dim", "settings", "registered_at", "num_classifications")
        out = []
        for row in rows:
            record = dict(zip(keys, row))
            record["settings"] = json.loads(record["settings"])
            out.append(record)
        return out

    def label_vectors(self, run_id: int) -> tuple[list[str], np.ndarray | None, np.ndarray | None]:
        """The labels, ``(C, k)`` float32 vectors and ``(k,)`` eigenvalues stored for a run.

        Vectors and eigenvalues are None for a run registered without an embedding.
        """
        with self._connect() as connection:
            run = connection.execute("SELECT embedding_dim, eigenvalues FROM runs WHERE run_id = ?", (int(run_id),)).fetchone()
            if run is None:
                raise KeyError(f"No run with id {run_id} in {self.path}; see ResultStore.runs().")
            rows = connection.execute(
                "SELECT label, vector FROM label_vectors WHERE run_id = ? ORDER BY label_index", (int(run_id),)
            ).fetchall()
        names = [row[0] for row in rows]
        dim, eigenvalue_blob = run
        if dim is None:
            return names, None, None
        vectors = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(len(rows), dim).astype(np.float32)
        eigenvalues = np.frombuffer(eigenvalue_blob, dtype="<f8").astype(np.float64)
        return names, vectors, eigenvalues

    # -- classifications --------------------------------------------------------------
    def add_classifications(self, results: Iterable, *, run_id: int) -> list[int]:
        """Store classification results in one transaction; return their ids.

        Parameters
        ----------
        results : iterable of ClassificationResult or dict
            Each with ``image``, ``sha256``, ``labels`` (``(name, similarity)`` pairs,
            or ``{"label", "similarity"}`` dicts) and ``setting``. Results with an
            ``error`` are skipped.
        run_id : int
            From :meth:`add_run`.
        """
        rows = []
        for result in results:
            record = result.to_dict() if hasattr(result, "to_dict") else dict(result)
            if record.get("error"):
                continue
            setting = getattr(result, "setting", None) if not isinstance(result, dict) else result.get("setting")
            labels = [
                (item["label"], float(item["similarity"])) if isinstance(item, dict) else (str(item[0]), float(item[1]))
                for item in record.get("labels", [])
            ]
            if any(not np.isfinite(similarity) for _, similarity in labels):
                raise ValueError(f"{record.get('image')}: a similarity is NaN or infinite; nothing was stored.")
            rows.append((_check_sha256(record["sha256"]), str(record.get("image", "")), str(setting or ""), labels))
        ids: list[int] = []
        now = _now()
        with self._connect() as connection, connection:
            if connection.execute("SELECT 1 FROM runs WHERE run_id = ?", (int(run_id),)).fetchone() is None:
                raise KeyError(f"No run with id {run_id} in {self.path}; register it with ResultStore.add_run first.")
            for sha256, image, setting, labels in rows:
                cursor = connection.execute(
                    "INSERT INTO classifications (sha256, image, run_id, setting, labels, classified_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        sha256,
                        image,
                        int(run_id),
                        setting,
                        json.dumps([{"label": name, "similarity": similarity} for name, similarity in labels]),
                        now,
                    ),
                )
                ids.append(int(cursor.lastrowid))
                connection.executemany(
                    "INSERT INTO classification_labels (classification_id, rank, label, similarity) VALUES (?, ?, ?, ?)",
                    ((cursor.lastrowid, rank, name, similarity) for rank, (name, similarity) in enumerate(labels)),
                )
        return ids

    def history(self, sha256: str) -> list[dict]:
        """Every stored classification of the image with this SHA-256, oldest first.

        Returns
        -------
        list of dict
            ``classification_id, sha256, image, run_id, run_path, setting, labels``
            (list of ``{"label", "similarity"}``) and ``classified_at``.
        """
        sha256 = _check_sha256(sha256)
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT c.classification_id, c.sha256, c.image, c.run_id, r.path, c.setting, c.labels, c.classified_at "
                "FROM classifications c JOIN runs r USING (run_id) WHERE c.sha256 = ? ORDER BY c.classification_id",
                (sha256,),
            ).fetchall()
        return [self._classification(row) for row in rows]

    def images_classified_as(
        self, label: str, *, min_similarity: float | None = None, run_id: int | None = None
    ) -> list[dict]:
        """Classifications that ranked ``label``, best similarity first.

        Parameters
        ----------
        label : str
        min_similarity : float, optional
            Only those where the label's similarity is at least this.
        run_id : int, optional
            Only classifications made with this run.

        Returns
        -------
        list of dict
            ``classification_id, sha256, image, run_id, run_path, setting,
            classified_at, rank`` (0 = best label) and ``similarity`` of ``label``.
        """
        query = (
            "SELECT c.classification_id, c.sha256, c.image, c.run_id, r.path, c.setting, c.classified_at, l.rank, l.similarity "
            "FROM classification_labels l JOIN classifications c USING (classification_id) JOIN runs r ON r.run_id = c.run_id "
            "WHERE l.label = ?"
        )
        parameters: list = [str(label)]
        if min_similarity is not None:
            if not np.isfinite(float(min_similarity)):
                raise ValueError(f"min_similarity must be a finite number; got {min_similarity!r}.")
            query += " AND l.similarity >= ?"
            parameters.append(float(min_similarity))
        if run_id is not None:
            query += " AND c.run_id = ?"
            parameters.append(int(run_id))
        query += " ORDER BY l.similarity DESC, c.classification_id"
        with self._connect() as connection:
            rows = connection.execute(query, parameters).fetchall()
        keys = ("classification_id", "sha256", "image", "run_id", "run_path", "setting", "classified_at", "rank", "similarity")
        return [dict(zip(keys, row)) for row in rows]

    def count_classifications(self) -> int:
        """Number of stored classifications."""
        with self._connect() as connection:
            return int(connection.execute("SELECT COUNT(*) FROM classifications").fetchone()[0])

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` for a sound file)."""
        with self._connect() as connection:
            return str(connection.execute("PRAGMA integrity_check").fetchone()[0])

    @staticmethod
    def _classification(row: Sequence) -> dict:
        keys = ("classification_id", "sha256", "image", "run_id", "run_path", "setting", "labels", "classified_at")
        record = dict(zip(keys, row))
        record["labels"] = json.loads(record["labels"])
        return record
