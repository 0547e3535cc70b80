"""Co-occurrence counting against a brute-force reference, the JSON layout, and Dask."""

import itertools
import json
import random

import numpy as np
import pytest
import scipy.sparse as sp

from workbench.method.cooccurrence import (
    CooccurrenceCounts,
    count_cooccurrence,
    count_cooccurrence_chunks,
    count_cooccurrence_dask,
    read_label_shard,
    write_label_shards,
)
from workbench.data.labels import Vocabulary, label_matrix


def random_label_sets(seed, *, num_images=300, num_labels=12, max_labels=6):
    rng = random.Random(seed)
    names = [f"label{i:02d}" for i in range(num_labels)]
    half = num_labels // 2
    topics = [names[:half], names[half:]]  # labels of different topics never meet: sparse pairs
    sets = []
    for _ in range(num_images):
        topic = topics[rng.random() < 0.4]
        weights = [1.0 / (i + 1) for i in range(len(topic))]  # Zipf-like frequencies
        size = rng.randint(0, max_labels)  # empty images included
        sets.append(tuple(dict.fromkeys(rng.choices(topic, weights=weights, k=size))))
    return sets, Vocabulary(tuple(names))


def brute_force_counts(label_sets, vocabulary):
    """Plain Python loops over images and pairs."""
    num_labels = len(vocabulary)
    label_counts = [0] * num_labels
    pair_counts = [[0] * num_labels for _ in range(num_labels)]
    for label_set in label_sets:
        present = sorted({vocabulary.index(label) for label in label_set})
        for i in present:
            label_counts[i] += 1
        for i, j in itertools.permutations(present, 2):
            pair_counts[i][j] += 1
    return len(label_sets), label_counts, pair_counts


def assert_counts_equal(counts, n_images, label_counts, pair_counts):
    assert counts.n_images == n_images
    np.testing.assert_array_equal(counts.label_counts, label_counts)
    np.testing.assert_array_equal(counts.pair_counts.toarray(), pair_counts)
    assert counts.label_counts.dtype == np.int64 and counts.pair_counts.dtype == np.int64
    assert sp.isspmatrix_csr(counts.pair_counts)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("chunk_size", [1, 7, 1_000_000])
def test_counts_match_brute_force(seed, chunk_size):
    label_sets, vocabulary = random_label_sets(seed)
    matrix = label_matrix(label_sets, vocabulary)
    before = matrix.copy()
    counts = count_cooccurrence(matrix, vocabulary, chunk_size=chunk_size)
    assert_counts_equal(counts, *brute_force_counts(label_sets, vocabulary))
    assert (matrix != before).nnz == 0  # input untouched
    assert counts.pair_counts.nnz < len(vocabulary) * (len(vocabulary) - 1)  # some pairs never co-occur: sparse


def test_streaming_chunks_equal_in_memory():
    label_sets, vocabulary = random_label_sets(5, num_images=500)
    matrix = label_matrix(label_sets, vocabulary)
    chunks = (matrix[start : start + 64] for start in range(0, matrix.shape[0], 64))
    streamed = count_cooccurrence_chunks(chunks, vocabulary)
    assert_counts_equal(streamed, *brute_force_counts(label_sets, vocabulary))


def test_dense_and_non_binary_input_count_each_label_once():
    vocabulary = Vocabulary(("a", "b", "c"))
    dense = np.array([[2, 1, 0], [0, 0, 0], [1, 0, 5], [3, 3, 3]])
    counts = count_cooccurrence(dense, vocabulary)
    assert counts.n_images == 4  # the empty image counts in N
    np.testing.assert_array_equal(counts.label_counts, [3, 2, 2])
    np.testing.assert_array_equal(counts.pair_counts.toarray(), [[0, 2, 2], [2, 0, 1], [2, 1, 0]])


def test_explicit_zeros_and_duplicates_in_a_csr_input():
    vocabulary = Vocabulary(("a", "b", "c"))
    # row 0: a twice (duplicate entry), b stored as an explicit 0; row 1: b, c
    matrix = sp.csr_matrix((np.array([1, 1, 0, 1, 1]), np.array([0, 0, 1, 1, 2]), np.array([0, 3, 5])), shape=(2, 3))
    before = [array.copy() for array in (matrix.data, matrix.indices, matrix.indptr)]
    counts = count_cooccurrence(matrix, vocabulary)
    np.testing.assert_array_equal(counts.label_counts, [1, 1, 1])
    np.testing.assert_array_equal(counts.pair_counts.toarray(), [[0, 0, 0], [0, 0, 1], [0, 1, 0]])
    for original, array in zip(before, (matrix.data, matrix.indices, matrix.indptr)):
        np.testing.assert_array_equal(array, original)  # the caller's matrix is untouched


def test_counting_rejects_wrong_width_and_bad_chunk_size():
    vocabulary = Vocabulary(("a", "b", "c"))
    with pytest.raises(ValueError, match="columns but the vocabulary has 3"):
        count_cooccurrence(sp.csr_matrix((4, 2)), vocabulary)
    with pytest.raises(ValueError, match="chunk_size"):
        count_cooccurrence(sp.csr_matrix((4, 3)), vocabulary, chunk_size=0)


def test_zero_images():
    vocabulary = Vocabulary(("a", "b"))
    counts = count_cooccurrence(sp.csr_matrix((0, 2), dtype=np.uint8), vocabulary)
    assert counts.n_images == 0 and counts.pair_counts.nnz == 0


# -- JSON layout --------------------------------------------------------------------------
def test_json_round_trip_and_exact_layout(tmp_path):
    label_sets, vocabulary = random_label_sets(3)
    counts = count_cooccurrence(label_matrix(label_sets, vocabulary), vocabulary)
    path = counts.save_json(tmp_path / "counts.json")
    raw = json.loads(path.read_text())
    assert set(raw) == {"description", "n_images", "labels", "label_counts", "pair_counts"}
    assert raw["labels"] == list(vocabulary.names)
    assert raw["n_images"] == counts.n_images
    assert raw["label_counts"] == counts.label_counts.tolist()
    assert raw["pair_counts"] == counts.pair_counts.toarray().tolist()  # dense list of lists
    assert all(raw["pair_counts"][i][i] == 0 for i in range(len(vocabulary)))
    loaded = CooccurrenceCounts.load_json(path)
    assert_counts_equal(loaded, counts.n_images, counts.label_counts, counts.pair_counts.toarray())
    assert loaded.vocabulary.names == vocabulary.names
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind


@pytest.mark.shared_data
@pytest.mark.parametrize("name", ["coco2014_train", "voc2007_trainval"])
def test_shared_files_round_trip(shared_data, tmp_path, name):
    source = shared_data / "cooccurrence" / f"{name}.json"
    original = json.loads(source.read_text())
    counts = CooccurrenceCounts.load_json(source)
    assert counts.n_images == original["n_images"]
    assert counts.num_labels == len(original["labels"])
    copy = json.loads(counts.save_json(tmp_path / "copy.json").read_text())
    for key in ("n_images", "labels", "label_counts", "pair_counts"):
        assert copy[key] == original[key], key


def _write(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


GOOD = {"n_images": 10, "labels": ["a", "b"], "label_counts": [4, 3], "pair_counts": [[0, 2], [2, 0]]}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"pair_counts": None}, "missing key 'pair_counts'"),
        ({"n_images": -1}, "'n_images' must be a non-negative integer"),
        ({"n_images": 2.5}, "'n_images' must be a non-negative integer"),
        ({"labels": ["a", "a"]}, "'labels'.*appears twice"),
        ({"label_counts": [4, 3, 1]}, "'label_counts' has shape"),
        ({"label_counts": [4, -3]}, "'label_counts' has a negative count"),
        ({"label_counts": [11, 3]}, "more than n_images"),
        ({"pair_counts": [[0, 2, 0], [2, 0, 0], [0, 0, 0]]}, "'pair_counts' has shape"),
        ({"pair_counts": [[0, 2], [2]]}, "'pair_counts' must be a list of equal-length lists"),
        ({"pair_counts": [[0, -2], [-2, 0]]}, "pair counts must be >= 0"),
        ({"pair_counts": [[1, 2], [2, 0]]}, "the diagonal must be 0"),
        ({"pair_counts": [[0, 2], [1, 0]]}, "'pair_counts' is not symmetric"),
        ({"pair_counts": [[0, 5], [5, 0]]}, "a pair cannot occur more often than either label"),
        ({"n_images": 5, "label_counts": [4, 3], "pair_counts": [[0, 1], [1, 0]]}, "too small for label counts"),
        ({"pair_counts": [[0, 2.5], [2.5, 0]]}, "'pair_counts' must be"),
        # JSON booleans are not counts (NumPy would read [4, true] as [4, 1]; these files are valid otherwise)
        ({"label_counts": [4, True], "pair_counts": [[0, 1], [1, 0]]},
         r"'label_counts' must be a list of integers; got a boolean .* at label_counts\[1\]"),
        ({"pair_counts": [[0, True], [True, 0]]},
         r"'pair_counts' must be a list of equal-length lists of integers; got a boolean .* at pair_counts\[0\]\[1\]"),
        ({"n_images": True, "label_counts": [1, 1], "pair_counts": [[0, 1], [1, 0]]}, "'n_images' must be a non-negative integer"),
        ({"labels": ["a", "b\tc"]}, r"'labels': Label 1 \('b\\tc'\) contains the control character '\\t'"),
        ({"labels": ["a\nb", "c"]}, r"'labels': Label 0 .* control character '\\n'"),
    ],
)
def test_load_json_rejects_bad_files_with_one_line_errors(tmp_path, change, message):
    data = {**GOOD, **change}
    data = {key: value for key, value in data.items() if value is not None}
    with pytest.raises(ValueError, match=message) as error:
        CooccurrenceCounts.load_json(_write(tmp_path, data))
    assert "\n" not in str(error.value)
    assert str(tmp_path / "bad.json") in str(error.value)


def test_load_json_errors_for_missing_and_malformed_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such counts file"):
        CooccurrenceCounts.load_json(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        CooccurrenceCounts.load_json(tmp_path / "broken.json")


# -- shards and Dask ------------------------------------------------------------------------
def test_shard_formats(tmp_path):
    label_sets, vocabulary = random_label_sets(8, num_images=50)
    matrix = label_matrix(label_sets, vocabulary)
    paths = write_label_shards(matrix, vocabulary, tmp_path, shard_size=20)
    assert [p.name for p in paths] == ["shard-00000.npz", "shard-00001.npz", "shard-00002.npz"]
    assert Vocabulary.read_csv(tmp_path / "vocabulary.csv").names == vocabulary.names
    parts = [read_label_shard(p, vocabulary=vocabulary)[1] for p in paths]
    assert (sp.vstack(parts) != matrix).nnz == 0
    with pytest.raises(ValueError, match="pass the vocabulary"):
        read_label_shard(paths[0])
    (tmp_path / "labels.csv").write_text("image,labels\nx.png,b|a\ny.png,\nz.png,a\n")
    shard_vocabulary, shard = read_label_shard(tmp_path / "labels.csv")
    assert shard_vocabulary.names == ("a", "b") and shard.toarray().tolist() == [[1, 1], [0, 0], [1, 0]]
    (tmp_path / "other.txt").write_text("")
    with pytest.raises(ValueError, match="unknown shard format"):
        read_label_shard(tmp_path / "other.txt")


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_dask_npz_shards_equal_single_machine(tmp_path, dask_client):
    label_sets, vocabulary = random_label_sets(11, num_images=700, num_labels=15)
    matrix = label_matrix(label_sets, vocabulary)
    paths = write_label_shards(matrix, vocabulary, tmp_path, shard_size=60)  # 12 shards: two reduction levels
    distributed_counts = count_cooccurrence_dask(paths, client=dask_client, vocabulary=vocabulary, fan_in=3)
    single = count_cooccurrence(matrix, vocabulary)
    assert_counts_equal(distributed_counts, single.n_images, single.label_counts, single.pair_counts.toarray())


def test_dask_csv_shards_unify_vocabularies(tmp_path, dask_client):
    label_sets, _ = random_label_sets(12, num_images=400, num_labels=20)
    shards = [label_sets[start : start + 90] for start in range(0, len(label_sets), 90)]
    paths = []
    for number, shard in enumerate(shards):  # each shard sees only some labels
        path = tmp_path / f"part{number}.csv"
        path.write_text("image,labels\n" + "".join(f"img{number}_{i}.png,{'|'.join(s)}\n" for i, s in enumerate(shard)))
        paths.append(path)
    result = count_cooccurrence_dask(paths, client=dask_client)
    vocabulary = Vocabulary.from_label_sets(label_sets)
    assert result.vocabulary.names == vocabulary.names
    assert_counts_equal(result, *brute_force_counts(label_sets, vocabulary))


def test_dask_rejects_missing_client_and_empty_input(tmp_path):
    with pytest.raises(ValueError, match="needs a dask.distributed Client"):
        count_cooccurrence_dask([tmp_path / "x.npz"], client=None)
    with pytest.raises(ValueError, match="No label shards"):
        count_cooccurrence_dask([], client=None)


@pytest.mark.slow
def test_count_command_on_a_dask_cluster_started_by_the_test_equals_counting_in_memory(tmp_path, capsys):
    """``workbench count SHARDS --scheduler ADDRESS``: a real LocalCluster's scheduler, shards counted by its workers."""
    from dask.distributed import LocalCluster

    from workbench.cli import main
    from workbench.data.labels import Vocabulary
    from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence

    rng = np.random.default_rng(8)
    names = [f"label{i}" for i in range(12)]
    rows = [sorted(rng.choice(12, size=rng.integers(0, 5), replace=False).tolist()) for _ in range(300)]
    shards = []
    for number, start in enumerate(range(0, 300, 70)):
        path = tmp_path / f"shard{number}.csv"
        lines = ["image,labels"] + [f"img{start + i}.png,{'|'.join(names[j] for j in row)}"
                                    for i, row in enumerate(rows[start:start + 70])]
        path.write_text("\n".join(lines) + "\n")
        shards.append(str(path))
    vocabulary = Vocabulary(names)
    vocabulary.write_csv(tmp_path / "vocabulary.csv")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        status = main(["count", *shards, "--vocabulary", str(tmp_path / "vocabulary.csv"),
                       "--scheduler", cluster.scheduler_address, "--out", str(tmp_path / "counts.json")])
    assert status == 0, capsys.readouterr().err
    assert "300 images, 12 labels" in capsys.readouterr().out
    counted = CooccurrenceCounts.load_json(tmp_path / "counts.json")
    import scipy.sparse as sp

    matrix = sp.csr_matrix((np.ones(sum(map(len, rows)), np.uint8),
                            (np.repeat(np.arange(300), [len(row) for row in rows]), np.concatenate(rows).astype(int))),
                           shape=(300, 12))
    reference = count_cooccurrence(matrix, vocabulary)
    assert counted.n_images == 300
    assert np.array_equal(counted.label_counts, reference.label_counts)
    assert (counted.pair_counts != reference.pair_counts).nnz == 0
    # a second run refuses to replace the file
    assert main(["count", *shards, "--out", str(tmp_path / "counts.json")]) == 2
    assert "exists; give --out a new file" in capsys.readouterr().err
