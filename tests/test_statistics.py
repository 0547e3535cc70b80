"""Final values, bootstrap intervals, paired intervals, sign test and Holm, checked against definitions and SciPy."""

import numpy as np
import pytest

from workbench.evaluation.statistics import (
    INTERVAL_METHODS,
    MIN_INTERVAL_SEEDS,
    bootstrap_interval,
    final_image_values,
    final_value,
    holm_adjust,
    paired_difference,
    paired_interval,
    read_image_ap,
    sign_test,
    verdict,
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
    base = rng.random((5, 500))
    better = np.clip(base + 0.05 + rng.normal(0, 0.02, base.shape), 0, 1)
    result = paired_difference(better, base)
    assert result["method"] == "crossed-t" and result["verdict"] == "better" and result["note"] is None
    assert result["low"] > 0 and result["wins"] == 5 and result["num_seeds"] == 5 and result["num_images"] == 500
    assert result["difference"] == pytest.approx(np.mean(better - base), abs=1e-12)
    assert result["low"] < result["difference"] < result["high"] and result["p_value"] < 0.05
    same = paired_difference(base + rng.normal(0, 0.05, base.shape), base)
    assert same["verdict"] == "no difference" and same["low"] < 0 < same["high"] and same["p_value"] > 0.05
    assert paired_difference(base, better)["verdict"] == "worse"


def test_with_fewer_than_four_seeds_there_is_no_interval_only_the_sign_test():
    rng = np.random.default_rng(0)
    base = rng.random((3, 500))
    result = paired_difference(base + 0.05, base)
    assert result["low"] is None and result["high"] is None and result["method"] == "sign test"
    assert result["p_value"] == pytest.approx(0.25)  # 3 of 3 seeds: 2 × (1/2)³
    assert result["verdict"] == "no difference" and result["wins"] == 3
    assert result["note"] == "3 seeds: too few for a 95 % interval; the difference is positive in 3 of 3 seeds"
    assert MIN_INTERVAL_SEEDS == 4 and paired_difference(base[:1] + 0.05, base[:1])["p_value"] == 1.0
    assert paired_difference(np.full((4, 3), np.nan), np.zeros((4, 3)))["difference"] is None


def test_paired_interval_widens_with_disagreeing_seeds():
    """Seeds that disagree widen the interval: the seeds are a random factor, not only the images."""
    rng = np.random.default_rng(1)
    base = rng.random((5, 400))
    steady = base + 0.02 + rng.normal(0, 0.01, base.shape)
    shaky = steady + np.array([[0.12], [-0.06], [0.0], [0.05], [-0.11]])  # same mean difference, seeds disagree
    narrow = paired_difference(steady, base)
    wide = paired_difference(shaky, base)
    assert wide["difference"] == pytest.approx(narrow["difference"], abs=1e-12)
    assert wide["high"] - wide["low"] > 5 * (narrow["high"] - narrow["low"])
    assert wide["verdict"] == "no difference" and narrow["verdict"] == "better"


def test_seed_t_is_scipys_paired_t_test_over_the_seeds_means():
    from scipy import stats

    rng = np.random.default_rng(2)
    first, second = rng.random((6, 80)), rng.random((6, 80))
    interval = paired_interval(first - second, method="seed-t")
    reference = stats.ttest_rel(first.mean(axis=1), second.mean(axis=1))
    low, high = reference.confidence_interval(0.95)
    assert float(interval["p_value"]) == pytest.approx(reference.pvalue, rel=1e-9)
    assert (float(interval["low"]), float(interval["high"])) == pytest.approx((low, high), rel=1e-9)


def _mean_squares_by_loops(d):
    """The two-way ANOVA (seeds × images, one value per cell) written out with loops over a list of lists."""
    seeds, images = len(d), len(d[0])
    grand = sum(sum(row) for row in d) / (seeds * images)
    seed_means = [sum(row) / images for row in d]
    image_means = [sum(d[s][i] for s in range(seeds)) / seeds for i in range(images)]
    ms_seeds = images * sum((m - grand) ** 2 for m in seed_means) / (seeds - 1)
    ms_images = seeds * sum((m - grand) ** 2 for m in image_means) / (images - 1)
    ms_resid = sum((d[s][i] - seed_means[s] - image_means[i] + grand) ** 2 for s in range(seeds) for i in range(images)) \
        / ((seeds - 1) * (images - 1))
    return grand, ms_seeds, ms_images, ms_resid


def test_crossed_t_is_the_two_way_anova_interval_with_satterthwaite_degrees_of_freedom():
    from scipy import stats

    rng = np.random.default_rng(3)
    d = 0.03 + rng.normal(0, 0.01, (5, 1)) + rng.normal(0, 0.2, (1, 40)) + rng.normal(0, 0.1, (5, 40))
    grand, ms_s, ms_i, ms_r = _mean_squares_by_loops(d.tolist())
    assert ms_i > ms_r  # an image effect: the seeds' own interval would be too narrow
    combined = ms_s + ms_i - ms_r
    df = max(combined ** 2 / (ms_s ** 2 / 4 + ms_i ** 2 / 39 + ms_r ** 2 / (4 * 39)), 4)
    error = np.sqrt(combined / (5 * 40))
    interval = paired_interval(d, method="crossed-t")
    assert float(interval["df"]) == pytest.approx(df, rel=1e-9)
    assert float(interval["low"]) == pytest.approx(grand - stats.t.ppf(0.975, df) * error, rel=1e-9)
    assert float(interval["p_value"]) == pytest.approx(2 * stats.t.sf(grand / error, df), rel=1e-9)
    # without an image effect (its mean square at most the residual's) it is the seeds' own t interval
    noise = rng.normal(0, 0.1, (5, 40))
    flat = 0.03 + rng.normal(0, 0.01, (5, 1)) + noise - noise.mean(axis=0)  # every image's mean the same
    assert _mean_squares_by_loops(flat.tolist())[2] <= _mean_squares_by_loops(flat.tolist())[3]
    for key in ("low", "high", "p_value", "df"):
        assert float(paired_interval(flat, method="crossed-t")[key]) == \
            pytest.approx(float(paired_interval(flat, method="seed-t")[key]), rel=1e-12)
    # a small image part estimated from few, noisy images never gives fewer degrees of freedom than the seeds'
    few = 0.03 + rng.normal(0, 0.001, (4, 1)) + rng.normal(0, 0.3, (4, 6))
    grand, ms_s, ms_i, ms_r = _mean_squares_by_loops(few.tolist())
    combined = ms_s + ms_i - ms_r
    assert combined > ms_s and combined ** 2 / (ms_s ** 2 / 3 + ms_i ** 2 / 5 + ms_r ** 2 / 15) < 3
    assert float(paired_interval(few, method="crossed-t")["df"]) == 3


def test_crossed_t_variance_is_unbiased_for_the_variance_of_the_mean():
    """Over many simulated studies the estimated variance of the mean averages to its true value."""
    from workbench.evaluation.coverage import simulate_studies
    from workbench.evaluation.statistics import _mean_squares

    seed_sd, image_sd, noise_sd, seeds, images = 0.02, 0.1, 0.25, 5, 200
    studies = simulate_studies(num_studies=4000, num_seeds=seeds, num_images=images, seed_sd=seed_sd, image_sd=image_sd,
                               noise_sd=noise_sd, random_state=5)
    _, ms_s, ms_i, ms_r = _mean_squares(studies)
    truth = seed_sd ** 2 / seeds + image_sd ** 2 / images + noise_sd ** 2 / (seeds * images)
    assert np.mean((ms_s + ms_i - ms_r) / (seeds * images)) == pytest.approx(truth, rel=0.03)
    assert np.var(studies.mean(axis=(1, 2))) == pytest.approx(truth, rel=0.08)


def test_paired_interval_is_vectorised_over_studies_and_refuses_bad_input():
    rng = np.random.default_rng(4)
    studies = rng.normal(size=(3, 2, 5, 30))
    for method in INTERVAL_METHODS:
        together = paired_interval(studies, method=method)
        assert together["low"].shape == (3, 2)
        alone = paired_interval(studies[1, 0], method=method)
        if method != "two-level-bootstrap":  # its resamples are drawn for the whole batch
            assert float(alone["low"]) == pytest.approx(together["low"][1, 0], rel=1e-12)
    with pytest.raises(ValueError, match="at least 2 seeds"):
        paired_interval(np.zeros((1, 5)))
    with pytest.raises(ValueError, match="Unknown interval method"):
        paired_interval(np.zeros((2, 5)), method="bayes")


def test_the_two_level_bootstrap_candidate_is_its_definition_written_out():
    """Seeds drawn with replacement, the images drawn once for every seed, the mean; percentile limits."""
    rng = np.random.default_rng(6)
    d = rng.normal(size=(3, 50))
    interval = paired_interval(d, method="two-level-bootstrap", num_resamples=400, random_state=7)
    draws = np.random.default_rng(7)
    counts = draws.multinomial(50, np.full(50, 1 / 50), size=400)
    seeds = draws.integers(0, 3, size=(400, 3))
    means = [np.mean([np.repeat(d[s], counts[r]).mean() for s in seeds[r]]) for r in range(400)]
    assert (float(interval["low"]), float(interval["high"])) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))


def _holm_by_definition(p_values, alpha):
    """Holm's step-down procedure at level alpha: which hypotheses it rejects."""
    order = sorted(range(len(p_values)), key=lambda index: p_values[index])
    rejected = set()
    for position, index in enumerate(order):
        if p_values[index] > alpha / (len(p_values) - position):
            break
        rejected.add(index)
    return rejected


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03, 0.005], [0.2, 0.001, 0.5, 0.012, 0.012, 0.04, 0.3],
                                      [0.010, 0.02, 0.03, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.2, 0.4],
                                      list(np.random.default_rng(8).uniform(0, 0.1, 15))])
def test_holm_adjusted_p_values_reject_exactly_what_the_step_down_procedure_rejects(p_values):
    adjusted = holm_adjust(p_values)
    candidates = sorted({min(1.0, (len(p_values) - j) * p) for j, p in enumerate(sorted(p_values))} | {1.0})
    for alpha in candidates + [value - 1e-12 for value in candidates] + [0.05]:
        assert {i for i, value in enumerate(adjusted) if value <= alpha} == _holm_by_definition(p_values, alpha)
    assert all(value >= p for value, p in zip(adjusted, p_values))


def test_holm_on_known_examples_and_undefined_tests():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; running maximum 0.02, 0.03, 0.06, 0.06
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # the study's claim: twelve tests whose smallest p is 0.010 leave none below 0.05 (0.010 × 12 = 0.12)
    assert min(holm_adjust([0.010] + [0.02 + 0.01 * i for i in range(11)])) == pytest.approx(0.12)
    assert holm_adjust([None, 0.02, float("nan"), 0.5]) == [None, pytest.approx(0.04), None, pytest.approx(0.5)]
    assert holm_adjust([]) == [] and holm_adjust([0.9, 0.8]) == [1.0, 1.0]


def test_sign_test_is_the_exact_binomial_and_verdicts_need_p_below_alpha():
    from math import comb

    assert sign_test([0.1, 0.2, 0.3]) == pytest.approx(0.25)
    assert sign_test([1.0] * 34 + [-1.0] * 2) == pytest.approx(2 * sum(comb(36, k) for k in range(3)) / 2 ** 36)
    assert sign_test([0.0, 0.0]) == 1.0 and sign_test([0.1, 0.0, -0.2]) == pytest.approx(1.0)
    assert verdict(0.02, 0.049) == "better" and verdict(-0.02, 0.01) == "worse"
    assert verdict(0.02, 0.05) == "no difference" and verdict(0.02, None) == "no difference"


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
        for seed in range(4):
            image_ap = np.clip(rng.random((4, 60)) * 0.5 + shift, 0, 1)
            atomic_save_npz(tmp_path / "runs" / f"{head}-seed{seed}" / "image_ap.npz", image_ap=image_ap)
            history = [{"epoch": e + 1, "map_at_100": float(image_ap[e].mean()), "macro_ap": 0.1} for e in range(4)]
            runs.append({"head": head, "seed": seed, "history": history})
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "runs": runs}))
    statistics = comparison_statistics(tmp_path)
    first = statistics["runs"][0]
    assert first["map_at_100"] == pytest.approx(np.mean([r["map_at_100"] for r in runs[0]["history"][-3:]]))
    assert first["low"] < first["map_at_100"] < first["high"]
    paired = statistics["paired"]
    assert paired["verdict"] == "better" and paired["seeds"] == [0, 1, 2, 3] and paired["method"] == "crossed-t"
    assert paired["low"] > 0 and "(crossed-t: seeds and images as random factors) over 4 seeds" in statistics_table(statistics)
    assert statistics_table(statistics).endswith("pmi better than random")
    (tmp_path / "results.json").write_text(json.dumps({"config": {}, "runs": [run for run in runs if run["seed"] < 2]}))
    two = comparison_statistics(tmp_path)
    assert two["paired"]["low"] is None and statistics_table(two).splitlines()[-1] == (
        f"pmi − random = {two['paired']['difference']:+.3f} (2 seeds: too few for a 95 % interval; the difference is "
        "positive in 2 of 2 seeds; sign test p = 0.500): no difference")
