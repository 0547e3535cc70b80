"""Ranking metrics against scikit-learn and brute-force references."""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import average_precision_score, label_ranking_average_precision_score

from workbench.evaluation import metrics


def _random_problem(seed, num_images=40, num_labels=12, *, ties=False, empty_rows=True):
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_images, num_labels)) < 0.25).astype(np.uint8)
    if empty_rows:
        labels[:3] = 0
    labels[:, -1] = 0  # a label without positives
    if ties:
        scores = rng.integers(0, 4, size=(num_images, num_labels)).astype(np.float32)
    else:
        scores = rng.standard_normal((num_images, num_labels)).astype(np.float32)
    return scores, labels


def _brute_ap_at_k(score_row, label_row, k):
    order = sorted(range(len(score_row)), key=lambda c: (-float(score_row[c]), c))
    relevant = int(sum(label_row))
    if relevant == 0:
        return None
    hits, total = 0, 0.0
    for rank, column in enumerate(order[:k], start=1):
        if label_row[column]:
            hits += 1
            total += hits / rank
    return total / min(k, relevant)


@pytest.mark.parametrize("seed", range(4))
def test_map_at_num_labels_matches_sklearn_lrap_without_ties(seed):
    scores, labels = _random_problem(seed, empty_rows=False)
    keep = labels.sum(axis=1) > 0
    expected = label_ranking_average_precision_score(labels[keep], scores[keep])
    assert metrics.mean_average_precision(scores, labels, k=labels.shape[1]) == pytest.approx(expected, abs=1e-12)
    assert metrics.mean_average_precision(scores, sp.csr_matrix(labels), k=1000) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("k", [1, 3, 5, 100])
@pytest.mark.parametrize("ties", [False, True])
def test_map_at_k_matches_brute_force(seed, k, ties):
    scores, labels = _random_problem(seed, ties=ties)
    per_image = metrics.average_precision_at_k(scores, labels, k=k)
    for row in range(len(labels)):
        expected = _brute_ap_at_k(scores[row], labels[row], k)
        if expected is None:
            assert np.isnan(per_image[row])  # images without labels are excluded
        else:
            assert per_image[row] == pytest.approx(expected, abs=1e-12)
    defined = [v for v in (_brute_ap_at_k(scores[r], labels[r], k) for r in range(len(labels))) if v is not None]
    assert metrics.mean_average_precision(scores, labels, k=k) == pytest.approx(np.mean(defined), abs=1e-12)


def test_map_perfect_and_worst_rankings():
    labels = np.array([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=np.uint8)
    assert metrics.mean_average_precision(labels.astype(float), labels, k=100) == 1.0
    # Relevant labels ranked last: AP = mean over relevant of P@rank.
    worst = 1.0 - labels
    expected = np.mean([(1 / 3 + 2 / 4) / 2, 1 / 4])
    assert metrics.mean_average_precision(worst, labels, k=4) == pytest.approx(expected)
    # k smaller than the rank of any relevant label: AP@k = 0.
    assert metrics.mean_average_precision(worst, labels, k=2) == 0.0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("ties", [False, True])
def test_macro_ap_matches_sklearn_average_precision_per_label(seed, ties):
    scores, labels = _random_problem(seed, ties=ties)
    per_label = metrics.per_label_average_precision(scores, sp.csr_matrix(labels))
    for column in range(labels.shape[1]):
        if labels[:, column].sum() == 0:
            assert np.isnan(per_label[column])  # labels without positives are excluded
        else:
            expected = average_precision_score(labels[:, column], scores[:, column])
            assert per_label[column] == pytest.approx(expected, abs=1e-12)
    expected_macro = np.nanmean(per_label)
    assert metrics.macro_average_precision(scores, labels) == pytest.approx(expected_macro)


@pytest.mark.parametrize("columns_per_block", [1, 2, 4, 9])
def test_per_label_ap_in_blocks_of_labels_matches_sklearn(monkeypatch, columns_per_block):
    """Blocks of 1, 2 (the last one ragged), 4 and all 9 labels: each label's AP is scikit-learn's."""
    scores, labels = _random_problem(7, num_images=30, num_labels=9, ties=True)
    labels[:, [3, 8]] = labels[:, [8, 0]]  # the label without positives in the middle, the ragged last block not empty
    monkeypatch.setattr(metrics, "_COLUMN_BLOCK_ELEMENTS", 30 * columns_per_block)
    sorts = []
    sort = np.sort
    monkeypatch.setattr(np, "sort", lambda *args, **kwargs: sorts.append(kwargs.get("axis")) or sort(*args, **kwargs))
    per_label = metrics.per_label_average_precision(scores, labels)
    assert sorts.count(0) == -(-9 // columns_per_block), "one sort per block of labels"
    for column in range(9):
        if labels[:, column].any():
            assert per_label[column] == pytest.approx(average_precision_score(labels[:, column], scores[:, column]), abs=1e-12)
        else:
            assert np.isnan(per_label[column])


@pytest.mark.parametrize("rows_per_block", [1, 4, 7, 2048])
def test_map_at_k_in_blocks_of_images_matches_brute_force(monkeypatch, rows_per_block):
    scores, labels = _random_problem(7, num_images=30, num_labels=9, ties=True)
    monkeypatch.setattr(metrics, "_ROW_CHUNK", rows_per_block)
    np.testing.assert_allclose(
        metrics.average_precision_at_k(scores, labels, k=4),
        [np.nan if labels[r].sum() == 0 else _brute_ap_at_k(scores[r], labels[r], 4) for r in range(30)],
        rtol=0, atol=1e-12,
    )
    hits = [sum(labels[r, c] for c in sorted(range(9), key=lambda c: (-float(scores[r, c]), c))[:3]) for r in range(30)]
    keep = labels.sum(axis=1) > 0
    assert metrics.precision_at_k(scores, labels, k=3) == pytest.approx(np.mean(np.array(hits)[keep] / 3), abs=1e-12)


@pytest.mark.parametrize("k", [1, 2, 5])
def test_precision_and_recall_at_k_brute_force(k):
    scores, labels = _random_problem(3, ties=True)
    precisions, recalls = [], []
    for row in range(len(labels)):
        relevant = labels[row].sum()
        if relevant == 0:
            continue
        order = sorted(range(labels.shape[1]), key=lambda c: (-float(scores[row, c]), c))[:k]
        hits = sum(labels[row, c] for c in order)
        precisions.append(hits / k)
        recalls.append(hits / relevant)
    assert metrics.precision_at_k(scores, labels, k=k) == pytest.approx(np.mean(precisions))
    assert metrics.recall_at_k(scores, labels, k=k) == pytest.approx(np.mean(recalls))


def test_bad_inputs_raise_one_line_value_errors():
    scores, labels = _random_problem(0)
    with pytest.raises(ValueError, match="shape"):
        metrics.mean_average_precision(scores[:, :-1], labels)
    bad = scores.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        metrics.macro_average_precision(bad, labels)
    with pytest.raises(ValueError, match="positive integer"):
        metrics.precision_at_k(scores, labels, k=0)


def test_all_empty_gives_nan():
    scores = np.zeros((3, 4))
    labels = np.zeros((3, 4), dtype=np.uint8)
    assert np.isnan(metrics.mean_average_precision(scores, labels))
    assert np.isnan(metrics.macro_average_precision(scores, labels))


def test_importing_metrics_does_not_import_keras():
    code = "import sys, workbench.evaluation.metrics; print('keras' in sys.modules, 'tensorflow' in sys.modules)"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert output.strip() == "False False"


@pytest.mark.parametrize("seed, map_k, precision_k", [(0, 100, 5), (1, 3, 5), (2, 5, 3), (3, 40, 40), (4, 1, 1)])
def test_evaluate_scores_ranks_once_and_gives_each_metric_as_its_own_function(seed, map_k, precision_k):
    """MAP@k, P@k and R@k from one ranking of the top labels are those of the separate functions (ties included)."""
    scores, labels = _random_problem(seed, num_images=60, num_labels=25, ties=seed % 2 == 0)
    labels[5] = 0  # an image without labels
    result = metrics.evaluate_scores(scores, labels, map_k=map_k, precision_k=precision_k)
    assert result[f"map_at_{map_k}"] == pytest.approx(metrics.mean_average_precision(scores, labels, k=map_k), abs=1e-15)
    assert result[f"precision_at_{precision_k}"] == pytest.approx(metrics.precision_at_k(scores, labels, k=precision_k), abs=1e-15)
    assert result[f"recall_at_{precision_k}"] == pytest.approx(metrics.recall_at_k(scores, labels, k=precision_k), abs=1e-15)
    assert result["macro_ap"] == metrics.macro_average_precision(scores, labels)


def test_the_top_k_selection_is_the_stable_sort_s_first_k_columns():
    """``_top_k`` (partition, then sort of the few) against the full stable sort: ties, zeros, signed zeros, integers."""
    rng = np.random.default_rng(0)
    for trial in range(350):
        num_images, num_labels = int(rng.integers(1, 20)), int(rng.integers(1, 40))
        kind = trial % 7
        block = (rng.standard_normal((num_images, num_labels)) if kind in (0, 6) else
                 rng.integers(0, 3, (num_images, num_labels)).astype(float) if kind == 1 else
                 np.zeros((num_images, num_labels)) if kind == 2 else
                 rng.integers(-5, 5, (num_images, num_labels)).astype(np.float32) if kind == 3 else
                 rng.integers(-3, 3, (num_images, num_labels)) if kind == 4 else  # int64, whose negation can overflow
                 rng.integers(0, 3, (num_images, num_labels)).astype(np.uint8))  # unsigned, whose negation wraps
        if kind == 3:
            block[block == 0] = -0.0
        if kind == 4:
            block[0, 0] = np.iinfo(np.int64).min
        if kind == 6:  # rows with ties beside rows without: only some rows take the path for ties
            block[::2] = np.round(block[::2])
        k = int(rng.integers(1, num_labels + 1))
        expected = np.argsort(-block.astype(np.float64), axis=1, kind="stable")[:, :k]
        assert np.array_equal(metrics._top_k(block, k), expected), (trial, k)


@pytest.mark.parametrize("seed, map_k, precision_k", [(0, 100, 5), (1, 4, 6), (2, 10, 10)])
def test_ranking_metrics_give_each_image_s_ap_and_the_clean_map_of_their_own_functions(seed, map_k, precision_k):
    scores, labels = _random_problem(seed, num_images=50, num_labels=20, ties=seed == 2)
    clean, _ = _random_problem(seed + 10, num_images=50, num_labels=20)
    clean = (clean > 0.5).astype(np.uint8)  # other true labels of the same images
    image_ap, result = metrics.ranking_metrics(scores, labels, map_k=map_k, precision_k=precision_k, clean_labels=clean)
    np.testing.assert_array_equal(image_ap, metrics.average_precision_at_k(scores, labels, k=map_k))
    assert result[f"map_at_{map_k}_clean"] == pytest.approx(metrics.mean_average_precision(scores, clean, k=map_k), abs=1e-15)
    assert {key: value for key, value in result.items() if not key.endswith("_clean")} == \
        metrics.evaluate_scores(scores, labels, map_k=map_k, precision_k=precision_k)
