"""Does a nominal 95 % paired interval hold the true difference 93–97 % of the time? Simulated studies, measured."""

import numpy as np
import pytest

from workbench.evaluation.coverage import SCENARIOS, coverage_table, interval_coverage, simulate_studies
from workbench.evaluation.statistics import INTERVAL_METHOD, MIN_INTERVAL_SEEDS, paired_difference


def test_the_workbench_interval_covers_93_to_97_percent_wherever_it_gives_one_and_not_at_3_seeds():
    """2,000 studies per scenario and seed count, seed- and image-level variance; a few seconds, vectorised."""
    frame = interval_coverage(methods=(INTERVAL_METHOD,), seed_counts=(4, 5, 10), num_studies=2000, random_state=0)
    assert len(frame) == 3 * len(SCENARIOS) and (frame["studies"] == 2000).all()
    assert MIN_INTERVAL_SEEDS == 4 and frame["coverage"].between(0.93, 0.97).all(), frame
    # with 3 seeds it falls below 93 % where the image effect is a little smaller than the seeds' (about 92.4 %
    # measured over 20,000 studies), so the workbench gives no interval there: the sign over the seeds instead
    three = interval_coverage(methods=(INTERVAL_METHOD,), seed_counts=(3,), num_studies=10_000, random_state=0,
                              scenarios={"seeds and images": SCENARIOS["seeds and images"]})
    assert three["coverage"].iloc[0] < 0.93, three
    rng = np.random.default_rng(0)
    base = rng.random((3, 100))
    assert paired_difference(base + 0.1, base)["low"] is None


def test_candidates_side_by_side_none_stays_in_the_band_at_3_seeds():
    """The two-level bootstrap (the interval before) undercovers with few seeds; the seeds' own t misses the image
    effect; the modified-large-sample interval overcovers; crossed-t undercovers (the test above)."""
    frame = interval_coverage(seed_counts=(3,), num_studies=2000, num_resamples=300, random_state=1)
    print(coverage_table(frame))
    coverage = frame.set_index(["scenario", "method"])["coverage"]
    assert coverage["seeds dominate", "two-level-bootstrap"] < 0.88
    assert coverage["images dominate", "seed-t"] < 0.75
    assert coverage["images and seeds", "crossed-mls"] > 0.97
    for method in ("two-level-bootstrap", "seed-t", "crossed-mls"):
        assert not coverage[:, method].between(0.93, 0.97).all(), method


def test_simulated_studies_have_the_variance_components_asked_for():
    studies = simulate_studies(num_studies=3000, num_seeds=4, num_images=50, difference=0.1, seed_sd=0.05,
                               image_sd=0.2, noise_sd=0.3, random_state=2)
    assert studies.shape == (3000, 4, 50)
    assert studies.mean() == pytest.approx(0.1, abs=0.01)
    seed_means = studies.mean(axis=2)  # seed effect + mean image effect + mean noise
    within = seed_means - seed_means.mean(axis=1, keepdims=True)
    assert np.mean(within.var(axis=1, ddof=1)) == pytest.approx(0.05 ** 2 + 0.3 ** 2 / 50, rel=0.05)
    image_means = studies.mean(axis=1)
    assert np.mean(image_means.var(axis=1, ddof=1)) == pytest.approx(0.2 ** 2 + 0.3 ** 2 / 4, rel=0.05)
    assert simulate_studies(num_studies=2, num_seeds=2, num_images=3, seed_sd=1, image_sd=1, noise_sd=1,
                            random_state=4).tolist() == \
        simulate_studies(num_studies=2, num_seeds=2, num_images=3, seed_sd=1, image_sd=1, noise_sd=1,
                         random_state=4).tolist()
