"""How often does a nominal 95 % paired interval hold the true difference? Measured by simulation.

Each simulated study is what a comparison of two heads gives: ``S`` seeds × ``N`` validation
images of per-image differences (first − second), made of

- the true difference (the expectation over new seeds and new validation images),
- a **seed effect** per seed (initialisation and data order), normal with ``seed_sd``,
- an **image effect** per image, shared by every seed (some images favour one head),
  normal with ``image_sd``,
- noise per seed and image, Laplace (heavier tails than normal, as per-image AP
  differences are) with standard deviation ``noise_sd``.

:func:`interval_coverage` draws many studies at once (one array of shape (studies, S, N))
and measures each of :data:`~workbench.evaluation.statistics.INTERVAL_METHODS` on all of them
(:func:`~workbench.evaluation.statistics.paired_interval` is vectorised over studies).
``python -m workbench.evaluation.coverage`` prints the table; ``tests/test_coverage.py``
checks that the workbench's interval covers 93–97 % where it gives one.
"""

from __future__ import annotations

import numpy as np

from workbench import _checks
from workbench.evaluation.statistics import INTERVAL_METHODS, paired_interval

__all__ = ["SCENARIOS", "TRUE_DIFFERENCE", "simulate_studies", "interval_coverage", "coverage_table"]

#: The true difference of every simulated study (the intervals' coverage does not depend on it).
TRUE_DIFFERENCE = 0.02
#: Studies are simulated and measured in chunks of at most this many values.
_CHUNK_ELEMENTS = 4_000_000

#: Settings of the simulation: name → (seed_sd, image_sd, noise_sd, num_images).
SCENARIOS = {
    # the study's regime: seeds spread by about 0.03 MAP@100, 1,200 validation images
    "seeds dominate": (0.03, 0.05, 0.25, 1200),
    # the image part of the mean's variance about 15 % of the seed part at 3 seeds: where crossed-t covers least
    "seeds and images": (0.02, 0.1, 0.25, 300),
    # the image part about twice the seed part at 3 seeds: where crossed-mls covers most
    "images and seeds": (0.01, 0.25, 0.25, 300),
    # images that favour one head, seeds that hardly matter
    "images dominate": (0.002, 0.2, 0.1, 300),
}


def simulate_studies(*, num_studies: int, num_seeds: int, num_images: int, difference: float = TRUE_DIFFERENCE,
                     seed_sd: float, image_sd: float, noise_sd: float, random_state=0) -> np.ndarray:
    """Per-image paired differences of ``num_studies`` simulated studies.

    Returns
    -------
    ndarray of shape (num_studies, num_seeds, num_images)
        ``difference`` + seed effect + image effect + noise (see the module docstring).
    """
    num_studies = _checks.integer(num_studies, "num_studies")
    num_seeds = _checks.integer(num_seeds, "num_seeds")
    num_images = _checks.integer(num_images, "num_images")
    rng = np.random.default_rng(random_state)
    seeds = rng.normal(size=(num_studies, num_seeds, 1)) * seed_sd
    images = rng.normal(size=(num_studies, 1, num_images)) * image_sd
    noise = rng.laplace(size=(num_studies, num_seeds, num_images)) * (noise_sd / np.sqrt(2))
    return difference + seeds + images + noise


def interval_coverage(*, methods=INTERVAL_METHODS, seed_counts=(3, 4, 5, 10), scenarios=None, num_studies: int = 2000,
                      confidence: float = 0.95, num_resamples: int = 1000, random_state=0):
    """Coverage of each interval method at each seed count in each scenario, one row each.

    Parameters
    ----------
    methods : sequence of str, default=INTERVAL_METHODS
    seed_counts : sequence of int, default=(3, 4, 5, 10)
    scenarios : dict, optional
        Name → ``(seed_sd, image_sd, noise_sd, num_images)``; default :data:`SCENARIOS`.
    num_studies : int, default=2000
        Simulated studies per scenario and seed count (every method sees the same ones).
    confidence : float, default=0.95
    num_resamples : int, default=1000
        Of the ``two-level-bootstrap``.
    random_state : int, default=0

    Returns
    -------
    pandas.DataFrame
        Columns ``scenario``, ``seeds``, ``method``, ``studies``, ``coverage`` (share of the
        studies whose interval holds the true difference), ``coverage_se`` (its binomial
        standard error) and ``median_width``.
    """
    import pandas as pd

    scenarios = SCENARIOS if scenarios is None else scenarios
    num_studies = _checks.integer(num_studies, "num_studies")
    records = []
    for number, (name, (seed_sd, image_sd, noise_sd, num_images)) in enumerate(scenarios.items()):
        for num_seeds in seed_counts:
            covered = {method: [] for method in methods}
            widths = {method: [] for method in methods}
            step = max(1, _CHUNK_ELEMENTS // (num_seeds * num_images))
            for chunk, start in enumerate(range(0, num_studies, step)):
                studies = simulate_studies(num_studies=min(step, num_studies - start), num_seeds=num_seeds,
                                           num_images=num_images, seed_sd=seed_sd, image_sd=image_sd, noise_sd=noise_sd,
                                           random_state=[random_state, number, num_seeds, chunk])
                for method in methods:
                    interval = paired_interval(studies, method=method, confidence=confidence,
                                               num_resamples=num_resamples, random_state=[random_state, number, num_seeds, chunk, 1])
                    covered[method].append((interval["low"] <= TRUE_DIFFERENCE) & (TRUE_DIFFERENCE <= interval["high"]))
                    widths[method].append(interval["high"] - interval["low"])
            for method in methods:
                coverage = float(np.mean(np.concatenate(covered[method])))
                records.append({"scenario": name, "seeds": num_seeds, "method": method, "studies": num_studies,
                                "coverage": coverage, "coverage_se": float(np.sqrt(coverage * (1 - coverage) / num_studies)),
                                "median_width": float(np.median(np.concatenate(widths[method])))})
    return pd.DataFrame.from_records(records, columns=["scenario", "seeds", "method", "studies", "coverage", "coverage_se",
                                                       "median_width"])


def coverage_table(frame) -> str:
    """:func:`interval_coverage`'s frame as text: one row per scenario and method, one column per seed count."""
    from workbench._tables import text_table

    wide = frame.pivot_table(index=["scenario", "method"], columns="seeds", values="coverage", sort=False).reset_index()
    wide.columns = [f"{column} seeds" if isinstance(column, (int, np.integer)) else column for column in wide.columns]
    studies = int(frame["studies"].iloc[0]) if len(frame) else 0
    return text_table(wide, digits=3) + f"\nshare of {studies} simulated studies each whose interval holds the true difference"


if __name__ == "__main__":  # pragma: no cover
    import time

    began = time.perf_counter()
    print(coverage_table(interval_coverage()))
    print(f"({time.perf_counter() - began:.1f} s)")
