"""PMI policies against a brute-force reference written from the definitions."""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from workbench.method.cooccurrence import CooccurrenceCounts, count_cooccurrence
from workbench.data.labels import Vocabulary, label_matrix
from workbench.method.pmi import pmi_matrix

from tests.test_cooccurrence import random_label_sets


def brute_force_pmi(counts, *, policy, diagonal, clip_value=None, smoothing=None, context_exponent=1.0, shift=1.0):
    """Plain loops over label pairs, straight from the module docstring's definitions."""
    n = counts.n_images
    label_counts = [int(c) for c in counts.label_counts if c > 0]
    kept = [i for i, c in enumerate(counts.label_counts) if c > 0]
    dense_pairs = counts.pair_counts.toarray()
    total = sum(label_counts)
    normaliser = sum(c**context_exponent for c in label_counts)
    marginal = [(total / n) * c**context_exponent / normaliser for c in label_counts]
    size = len(kept)
    result = np.zeros((size, size))
    for a in range(size):
        for b in range(size):
            if a == b:
                if diagonal == "zero":
                    continue
                value = math.log((label_counts[a] / n) / marginal[a] ** 2) - math.log(shift)
            else:
                pair = dense_pairs[kept[a], kept[b]] + (smoothing if policy == "smooth" else 0)
                if pair == 0:
                    result[a, b] = clip_value if policy == "clip" else 0.0
                    continue
                value = math.log((pair / n) / (marginal[a] * marginal[b])) - math.log(shift)
            if policy == "ppmi":
                value = max(value, 0.0)
            elif policy == "clip":
                value = max(value, clip_value)
            result[a, b] = value
    return result, kept


@pytest.fixture(scope="module")
def counts():
    label_sets, vocabulary = random_label_sets(21, num_images=400, num_labels=10)
    rng = np.random.default_rng(0)
    # an independent, frequent label: its PMI with the others scatters around 0, negatives included
    label_sets = [s + ("often",) if rng.random() < 0.6 else s for s in label_sets]
    vocabulary = Vocabulary(vocabulary.names + ("often",))
    return count_cooccurrence(label_matrix(label_sets, vocabulary), vocabulary)


CASES = [
    dict(policy="zero"),
    dict(policy="ppmi"),
    dict(policy="clip", clip_value=-1.5),
    dict(policy="clip", clip_value=0.5),
    dict(policy="smooth"),
    dict(policy="smooth", smoothing=0.25),
]


@pytest.mark.parametrize("options", CASES, ids=lambda o: "-".join(str(v) for v in o.values()))
@pytest.mark.parametrize("diagonal", ["self", "zero"])
@pytest.mark.parametrize("shift, context_exponent", [(1.0, 1.0), (5.0, 1.0), (1.0, 0.75), (2.0, 0.5)])
def test_every_policy_matches_brute_force(counts, options, diagonal, shift, context_exponent):
    result = pmi_matrix(counts, diagonal=diagonal, shift=shift, context_exponent=context_exponent, **options)
    expected, kept = brute_force_pmi(
        counts, diagonal=diagonal, shift=shift, context_exponent=context_exponent,
        smoothing=options.get("smoothing", 1.0), clip_value=options.get("clip_value"), policy=options["policy"],
    )
    dense = result.toarray()
    np.testing.assert_allclose(dense, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(result.kept, kept)
    assert np.all(np.isfinite(dense))
    np.testing.assert_array_equal(dense, dense.T)
    assert result.is_sparse == (options["policy"] in ("zero", "ppmi"))
    assert result.settings["policy"] == options["policy"] and result.settings["shift"] == shift


def test_zero_policy_keeps_negative_values_and_stays_sparse(counts):
    result = pmi_matrix(counts)
    assert sp.isspmatrix_csr(result.matrix)
    assert result.matrix.nnz == counts.pair_counts.nnz + counts.num_labels  # pairs + diagonal
    assert result.matrix.data.min() < 0  # finite negative PMI kept
    ppmi = pmi_matrix(counts, policy="ppmi")
    assert ppmi.matrix.data.min() > 0 and ppmi.matrix.nnz < result.matrix.nnz


def test_self_information_on_the_diagonal(counts):
    result = pmi_matrix(counts)
    expected = -np.log(counts.label_counts / counts.n_images)
    np.testing.assert_allclose(result.matrix.diagonal(), expected, rtol=1e-12)


def test_context_exponent_one_is_plain_pmi(counts):
    plain = pmi_matrix(counts).toarray()
    i, j = np.argwhere(counts.pair_counts.toarray() > 0)[0]
    c = counts.label_counts
    assert plain[i, j] == pytest.approx(math.log(counts.pair_counts[i, j] * counts.n_images / (c[i] * c[j])), rel=1e-12)
    smoothed = pmi_matrix(counts, context_exponent=0.75).toarray()
    rare = np.argmin(c)
    # smoothing raises a rare label's marginal, which lowers its PMI with others
    assert np.all(smoothed[rare, np.arange(len(c)) != rare] <= plain[rare, np.arange(len(c)) != rare] + 1e-12)


def test_labels_that_never_occur_are_dropped_with_a_warning():
    vocabulary = Vocabulary(("a", "ghost", "b", "c", "phantom"))
    matrix = label_matrix([("a", "b"), ("b", "c"), ("a",), ()], vocabulary)
    counts = count_cooccurrence(matrix, vocabulary)
    with pytest.warns(UserWarning, match=r"Dropping 2 label\(s\).*'ghost', 'phantom'"):
        result = pmi_matrix(counts, policy="clip", clip_value=-1.0)
    assert result.vocabulary.names == ("a", "b", "c")
    np.testing.assert_array_equal(result.kept, [0, 2, 3])
    np.testing.assert_array_equal(result.label_counts, [2, 2, 1])
    assert result.settings["dropped_labels"] == ["ghost", "phantom"]
    assert np.all(np.isfinite(result.toarray()))


def test_no_warning_when_every_label_occurs(counts):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pmi_matrix(counts)


def test_a_label_in_every_image_has_zero_self_information():
    vocabulary = Vocabulary(("always", "sometimes"))
    counts = count_cooccurrence(label_matrix([("always",), ("always", "sometimes")], vocabulary), vocabulary)
    result = pmi_matrix(counts).toarray()
    assert result[0, 0] == 0.0 and result[0, 1] == pytest.approx(0.0)
    assert np.all(np.isfinite(result))


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(policy="positive"), "Unknown PMI policy 'positive'"),
        (dict(diagonal="one"), "Unknown diagonal 'one'"),
        (dict(policy="clip"), "needs a finite clip_value"),
        (dict(policy="clip", clip_value=float("-inf")), "needs a finite clip_value"),
        (dict(clip_value=-1.0), "clip_value only applies to policy='clip'"),
        (dict(smoothing=1.0), "smoothing only applies to policy='smooth'"),
        (dict(policy="smooth", smoothing=0), "smoothing must be a positive finite number"),
        (dict(shift=0), "shift must be a positive finite number"),
        (dict(context_exponent=-0.5), "context_exponent must be a positive finite number"),
    ],
)
def test_bad_options_are_one_line_value_errors(counts, options, message):
    with pytest.raises(ValueError, match=message) as error:
        pmi_matrix(counts, **options)
    assert "\n" not in str(error.value)


def test_no_label_occurs():
    vocabulary = Vocabulary(("a", "b"))
    counts = CooccurrenceCounts(n_images=3, vocabulary=vocabulary, label_counts=np.zeros(2, np.int64), pair_counts=sp.csr_matrix((2, 2)))
    with pytest.raises(ValueError, match="nothing to embed"):
        pmi_matrix(counts)
    with pytest.raises(ValueError, match="needs CooccurrenceCounts"):
        pmi_matrix(np.eye(2))


@pytest.mark.shared_data
def test_real_coco_pmi_is_finite_symmetric_and_sensible(shared_data):
    counts = CooccurrenceCounts.load_json(shared_data / "cooccurrence" / "coco2014_train.json")
    for policy, extra in [("zero", {}), ("ppmi", {}), ("clip", {"clip_value": -2.0}), ("smooth", {})]:
        matrix = pmi_matrix(counts, policy=policy, **extra).toarray()
        assert np.all(np.isfinite(matrix)) and np.array_equal(matrix, matrix.T)
    matrix = pmi_matrix(counts).toarray()
    index = counts.vocabulary.index
    assert matrix[index("fork"), index("knife")] > 1.0  # eaten with together
    assert matrix[index("keyboard"), index("mouse")] > 1.0
    assert matrix[index("fork"), index("giraffe")] <= 0.0  # never (or rarely) together
