"""Final values, bootstrap intervals and paired tests, checked against definitions and SciPy."""

import numpy as np
import pytest

from workbench.evaluation.statistics import (
    bootstrap_interval,
    final_image_values,
    final_value,
    paired_difference,
    read_image_ap,
)


def test_final_value_is_the_mean_of_the_last_three_epochs_or_fewer():
    history = [{"map_at_100": value} for value in (0.1, 0.2, 0.4, 0.5, 0.9)]
    assert final_value(history) == pytest.approx((0.4 + 0.5 + 0.9) / 3)
    assert final_value(history[:2]) == pytest.approx(0.15)
    assert final_value(history, last=1) == pytest.approx(0.9)
    assert final_value([{"map_at_100": None}]) is None
    assert final_value([]) is None


def test_final_image_values_average_the_same_epochs_so_their_mean_is_the_final_map():
    rng = np.random.default_rng(0)
    image_ap = rng.random((5, 40))
    image_ap[:, 7] = np.nan  # an image without labels is NaN in every epoch
    history = [{"map_at_100": float(np.nanmean(row))} for row in image_ap]
    values = final_image_values(image_ap)
    assert np.isnan(values[7])
    assert np.nanmean(values) == pytest.approx(final_value(history), abs=1e-12)


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    """Same method (percentile, mean), different random draws: the limits agree to Monte-Carlo precision."""
    from scipy import stats

    rng = np.random.default_rng(3)
    values = rng.beta(2, 5, size=300)
    low, high = bootstrap_interval(values, num_resamples=20_000, random_state=1)
    reference = stats.bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=20_000, method="percentile",
                                random_state=2).confidence_interval
    assert low == pytest.approx(reference.low, abs=0.003)
    assert high == pytest.approx(reference.high, abs=0.003)
    # and the normal approximation: mean ± 1.96 standard errors
    error = values.std(ddof=1) / np.sqrt(len(values))
    assert low == pytest.approx(values.mean() - 1.96 * error, abs=0.004)
    assert high == pytest.approx(values.mean() + 1.96 * error, abs=0.004)


def test_bootstrap_interval_is_the_percentile_bootstrap_of_its_seeded_draws():
    """The definition written out: resample with replacement, take means, read two quantiles."""
    rng = np.random.default_rng(4)
    values = rng.random(300)
    draws = np.random.default_rng(9).integers(0, len(values), size=(2000, len(values)))
    expected = np.quantile(values[draws].mean(axis=1), [0.05, 0.95])
    assert bootstrap_interval(values, confidence=0.9, random_state=9) == pytest.approx(tuple(expected), abs=1e-12)
    assert bootstrap_interval([0.4]) == (0.4, 0.4)


def test_bootstrap_interval_is_seeded_ignores_nan_and_handles_edge_cases():
    values = np.array([0.2, 0.5, np.nan, 0.9, 0.4])
    assert bootstrap_interval(values, random_state=5) == bootstrap_interval(values, random_state=5)
    low, high = bootstrap_interval(values)
    assert 0.2 <= low < np.nanmean(values) < high <= 0.9
    assert bootstrap_interval(np.full(10, 0.3)) == pytest.approx((0.3, 0.3))
    assert all(np.isnan(bootstrap_interval([np.nan, np.nan])))
    with pytest.raises(ValueError, match="confidence must be below 1"):
        bootstrap_interval(values, confidence=1.5)


def test_paired_difference_finds_a_real_difference_and_not_a_fake_one():
    rng = np.random.default_rng(0)
    base = rng.random((3, 500))
    better = np.clip(base + 0.05 + rng.normal(0, 0.02, base.shape), 0, 1)
    result = paired_difference(better, base)
    assert result["beats"] is True and result["low"] > 0 and result["wins"] == 3 and result["num_seeds"] == 3
    assert result["difference"] == pytest.approx(np.mean(better - base), abs=1e-12)
    assert result["t_pvalue"] < 0.05
    same = paired_difference(base + rng.normal(0, 0.05, base.shape), base)
    assert same["beats"] is None and same["low"] < 0 < same["high"]
    reverse = paired_difference(base, better)
    assert reverse["beats"] is False


def test_paired_interval_widens_with_disagreeing_seeds():
    """Seeds that disagree widen the interval: it resamples seeds as well as images."""
    rng = np.random.default_rng(1)
    base = rng.random((3, 400))
    steady = base + 0.02
    shaky = base + np.array([[0.12], [-0.06], [0.0]])  # same mean difference, seeds disagree
    narrow = paired_difference(steady, base)
    wide = paired_difference(shaky, base)
    assert wide["difference"] == pytest.approx(narrow["difference"], abs=1e-12)
    assert wide["high"] - wide["low"] > 5 * (narrow["high"] - narrow["low"])
    assert wide["beats"] is None and narrow["beats"] is True


def test_paired_difference_refuses_unpaired_shapes():
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(np.zeros((2, 5)), np.zeros((3, 5)))


def test_read_image_ap_returns_none_when_absent_or_short_and_refuses_damage(tmp_path):
    from workbench._io import atomic_save_npz

    assert read_image_ap(tmp_path) is None
    atomic_save_npz(tmp_path / "image_ap.npz", image_ap=np.ones((2, 4), np.float32))
    assert read_image_ap(tmp_path).shape == (2, 4)
    assert read_image_ap(tmp_path, num_epochs=1).shape == (1, 4)
    assert read_image_ap(tmp_path, num_epochs=3) is None
    (tmp_path / "image_ap.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="damaged"):
        read_image_ap(tmp_path)


def test_a_training_run_keeps_every_validation_images_ap_and_its_rows_average_to_the_history(tmp_path):
    """``image_ap.npz``: one row per epoch, the row's mean is that epoch's MAP@100; a resumed run extends it."""
    import json

    from tests.conftest import train_tiny_run

    run_dir = train_tiny_run(tmp_path / "run", epochs=2, num_images=64)
    history = json.loads((run_dir / "history.json").read_text())
    image_ap = read_image_ap(run_dir)
    assert image_ap.shape[0] == 2
    for row, record in zip(image_ap, history):
        assert np.nanmean(row) == pytest.approx(record["map_at_100"], abs=1e-6)
    train_tiny_run(tmp_path / "run", epochs=3, num_images=64)  # resumes after epoch 2
    longer = read_image_ap(run_dir)
    assert longer.shape[0] == 3 and np.array_equal(longer[:2], image_ap, equal_nan=True)


def test_analysis_of_a_run_per_label_ap_matches_scikit_learn_and_companions_match_brute_force(tmp_path):
    from sklearn.metrics import average_precision_score

    from tests.conftest import colour_dataset, train_tiny_run
    from workbench.evaluation.analysis import analyse_run, companion_table
    from workbench.learning.feeding import ImageSource
    from workbench.learning.runs import load_run

    run_dir = train_tiny_run(tmp_path / "run", epochs=1, num_images=64)
    dataset = colour_dataset(64)
    train_set, validation_set = dataset.split(validation_fraction=0.1, random_state=0)
    analysis = analyse_run(load_run(run_dir), validation_set, train_set, num_errors=5, companions=2)
    run = load_run(run_dir)
    scores = run.label_scores(ImageSource(validation_set, image_size=run.image_size).load_all())
    truth = validation_set.labels.toarray() != 0
    for label, value in enumerate(analysis["per_label_ap"]):
        if truth[:, label].any():
            assert value == pytest.approx(average_precision_score(truth[:, label], scores[:, label]), abs=1e-9)
        else:
            assert value is None
    errors = analysis["errors"]
    assert len(errors) <= 5 and [e["score"] for e in errors] == sorted((e["score"] for e in errors), reverse=True)
    for error in errors:
        assert error["wrong"] not in error["true"]
    # companions: brute force PMI from the definition
    labels = train_set.labels.toarray() != 0
    n = len(labels)
    table = companion_table(train_set, companions=2)
    for a in range(labels.shape[1]):
        values = []
        for b in range(labels.shape[1]):
            both = np.sum(labels[:, a] & labels[:, b])
            if a != b and both:
                values.append((np.log(both * n / (labels[:, a].sum() * labels[:, b].sum())), b))
        best = {b for value, b in sorted(values, key=lambda item: (-item[0], item[1]))[:2] if value > 0}
        assert table[a] == best
    assert 0 <= analysis["companion_share_chance"] <= 1 and 0 <= analysis["companion_share_all"] <= 1


def test_comparison_statistics_read_a_comparison_folder(tmp_path):
    import json

    from workbench._io import atomic_save_npz
    from workbench.experiments.results import comparison_statistics, statistics_table

    rng = np.random.default_rng(0)
    runs = []
    for head, shift in (("pmi", 0.2), ("random", 0.0)):
        for seed in (0, 1):
            image_ap = np.clip(rng.random((4, 60)) * 0.5 + shift, 0, 1)
            atomic_save_npz(tmp_path / "runs" / f"{head}-seed{seed}" / "image_ap.npz", image_ap=image_ap)
            history = [{"epoch": e + 1, "map_at_100": float(image_ap[e].mean()), "macro_ap": 0.1} for e in range(4)]
            runs.append({"head": head, "seed": seed, "history": history})
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "runs": runs}))
    statistics = comparison_statistics(tmp_path)
    first = statistics["runs"][0]
    assert first["map_at_100"] == pytest.approx(np.mean([r["map_at_100"] for r in runs[0]["history"][-3:]]))
    assert first["low"] < first["map_at_100"] < first["high"]
    assert statistics["paired"]["beats"] is True and statistics["paired"]["seeds"] == [0, 1]
    assert "pmi beats random" in statistics_table(statistics)
