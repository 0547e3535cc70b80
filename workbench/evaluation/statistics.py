"""Honest statistics of trained runs: final values, bootstrap intervals over images, paired tests.

A run's final value is the mean of its last ``min(3, epochs)`` epochs (one epoch's value is
noisy). Its uncertainty over the choice of validation images is a percentile bootstrap
(``scipy.stats.bootstrap``): each validation image's AP averaged over the same last epochs,
resampled with replacement, the mean taken each time (that mean equals the final value
exactly, because MAP is the mean of per-image APs). A paired comparison of two heads uses the same seeds and the same
validation split: the per-image difference averaged over seeds, bootstrapped over images,
and a paired t-test over the seeds' final values. NumPy and SciPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench import _checks

__all__ = ["IMAGE_AP_FILE", "read_image_ap", "LAST_EPOCHS", "final_value", "final_image_values", "bootstrap_interval", "paired_difference"]

#: A run folder's file of every validation image's AP@k after each epoch, shape (epochs, validation images).
IMAGE_AP_FILE = "image_ap.npz"
#: A run's final value is the mean of this many last epochs (fewer when it has fewer).
LAST_EPOCHS = 3
#: Bootstrap resamples of the mean; chunked so memory stays below a few tens of MB.
_RESAMPLES = 2000
_CHUNK_ELEMENTS = 4_000_000


def read_image_ap(run_dir: str | Path, *, num_epochs: int | None = None) -> np.ndarray | None:
    """The run's per-image AP@k, shape (epochs, validation images), its first ``num_epochs`` rows; ``None`` when absent.

    A run written before the file existed, or whose file has fewer rows than
    ``num_epochs`` (it was written by an older version, then resumed), has none.
    """
    path = Path(run_dir) / IMAGE_AP_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            values = np.asarray(arrays["image_ap"], dtype=np.float32)
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is damaged ({str(error).splitlines()[0] if str(error) else type(error).__name__}); delete it and train the run again.") from None
    if values.ndim != 2 or (num_epochs is not None and len(values) < num_epochs):
        return None
    return values if num_epochs is None else values[:num_epochs]


def final_value(history, metric: str = "map_at_100", *, last: int = LAST_EPOCHS) -> float | None:
    """The mean of ``metric`` over the last ``min(last, epochs)`` epochs of a history (``None`` if undefined).

    Parameters
    ----------
    history : list of dict
        Records with ``metric`` (``None`` where undefined), oldest first.
    metric : str, default="map_at_100"
    last : int, default=3
    """
    last = _checks.integer(last, "last")
    values = [record.get(metric) for record in history[-last:]]
    if not values or any(value is None for value in values):
        return None
    return float(np.mean(np.asarray(values, dtype=np.float64)))


def final_image_values(image_ap, *, last: int = LAST_EPOCHS) -> np.ndarray:
    """Each validation image's AP averaged over the last ``min(last, epochs)`` epochs.

    Parameters
    ----------
    image_ap : array-like of shape (epochs, N)
        Per-image AP after each epoch (NaN for images without labels).

    Returns
    -------
    ndarray of shape (N,), dtype float64
        Its mean over non-NaN images is :func:`final_value` of the MAP history (the
        same images are NaN in every epoch).
    """
    values = np.asarray(image_ap, dtype=np.float64)
    if values.ndim != 2 or len(values) == 0:
        raise ValueError(f"image_ap must be a non-empty 2-D array (epochs × images); got shape {values.shape}.")
    return values[-_checks.integer(last, "last"):].mean(axis=0)


def bootstrap_interval(values, *, confidence: float = 0.95, num_resamples: int = _RESAMPLES,
                       random_state=0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaN entries left out).

    ``scipy.stats.bootstrap(method="percentile")``, seeded by ``random_state``.

    Parameters
    ----------
    values : array-like of shape (N,)
        One value per validation image (for example :func:`final_image_values`).
    confidence : float, default=0.95
    num_resamples : int, default=2000
    random_state : int or numpy Generator, default=0

    Returns
    -------
    (low, high) : tuple of float
        The ``(1 − confidence)/2`` and ``(1 + confidence)/2`` quantiles of the resampled
        means; ``(nan, nan)`` when no value is defined.
    """
    from scipy import stats

    confidence = _checks.number(confidence, "confidence", positive=True)
    if confidence >= 1:
        raise ValueError(f"confidence must be below 1 (for example 0.95); got {confidence}.")
    num_resamples = _checks.integer(num_resamples, "num_resamples")
    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[~np.isnan(values)]
    if len(values) == 0:
        return float("nan"), float("nan")
    if len(values) == 1:  # every resample is that value (SciPy asks for two)
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=num_resamples, confidence_level=confidence,
                             method="percentile", vectorized=True, rng=np.random.default_rng(random_state),
                             batch=max(1, _CHUNK_ELEMENTS // len(values)))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_difference(first, second, *, confidence: float = 0.95, num_resamples: int = _RESAMPLES,
                      random_state=0) -> dict:
    """Does ``first`` beat ``second``? Paired by seed and by validation image.

    The interval is a two-level percentile bootstrap of the mean paired difference:
    each resample draws the seeds with replacement, then the validation images with
    replacement (the same images for every seed, as the heads saw the same split). It
    so holds both sources of noise, the network's initialisation and the choice of
    validation images; with one seed it is the bootstrap over images alone.

    Parameters
    ----------
    first, second : array-like of shape (S, N)
        Final per-image values (:func:`final_image_values`) of ``S`` seeds of two heads,
        seed ``s`` of one paired with seed ``s`` of the other, on the same ``N``
        validation images.
    confidence : float, default=0.95
    num_resamples : int, default=2000
    random_state : int or numpy Generator, default=0

    Returns
    -------
    dict
        ``difference`` (mean of first − second), ``low``/``high`` (its bootstrap
        interval), ``num_seeds``, ``seed_differences`` (each seed's final difference),
        ``wins`` (seeds where first is higher), ``t_pvalue`` (two-sided paired t-test
        over seeds; ``None`` with fewer than 2 seeds or no spread) and ``beats``
        (``True`` when the interval lies above 0, ``False`` when below, ``None`` when it
        holds 0).
    """
    from scipy import stats

    first = np.atleast_2d(np.asarray(first, dtype=np.float64))
    second = np.atleast_2d(np.asarray(second, dtype=np.float64))
    if first.shape != second.shape:
        raise ValueError(f"Paired values must have one shape (seeds × images); got {first.shape} and {second.shape}.")
    defined = ~(np.isnan(first).any(axis=0) | np.isnan(second).any(axis=0))
    differences = (first - second)[:, defined]
    num_seeds, num_images = differences.shape
    per_seed = differences.mean(axis=1) if num_images else np.full(num_seeds, np.nan)
    low = high = float("nan")
    if num_images:
        rng = np.random.default_rng(random_state)
        num_resamples = _checks.integer(num_resamples, "num_resamples")
        means = np.empty(num_resamples)
        rows = max(1, _CHUNK_ELEMENTS // (num_images * num_seeds))
        for start in range(0, num_resamples, rows):
            stop = min(start + rows, num_resamples)
            images = rng.integers(0, num_images, size=(stop - start, num_images))
            seeds = rng.integers(0, num_seeds, size=(stop - start, num_seeds))
            seed_means = differences[:, images].mean(axis=2)  # (S, resamples)
            means[start:stop] = np.take_along_axis(seed_means.T, seeds, axis=1).mean(axis=1)
        confidence = _checks.number(confidence, "confidence", positive=True)
        low, high = (float(value) for value in np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]))
    pvalue = None
    if num_seeds >= 2 and np.std(per_seed) > 0:
        pvalue = float(stats.ttest_rel(first[:, defined].mean(axis=1), second[:, defined].mean(axis=1)).pvalue)
    return {
        "difference": float(per_seed.mean()),
        "low": low,
        "high": high,
        "num_seeds": int(num_seeds),
        "seed_differences": [float(value) for value in per_seed],
        "wins": int(np.sum(per_seed > 0)),
        "t_pvalue": pvalue,
        "beats": True if low > 0 else False if high < 0 else None,
    }
