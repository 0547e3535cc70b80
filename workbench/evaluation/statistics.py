"""Honest statistics of trained runs: final values, bootstrap intervals over images, paired tests, Holm.

A run's final value is the mean of its last ``min(3, epochs)`` epochs (one epoch's value is
noisy). Its uncertainty over the choice of validation images is a percentile bootstrap
(``scipy.stats.bootstrap``): each validation image's AP averaged over the same last epochs,
resampled with replacement, the mean taken each time (that mean equals the final value
exactly, because MAP is the mean of per-image APs).

A paired comparison of two heads uses the same seeds and the same validation split. Its
interval (:func:`paired_interval`, ``crossed-t``) treats seeds and validation images as
crossed random factors, so it holds both sources of noise; its coverage is measured by
simulation (:mod:`workbench.evaluation.coverage`): 93–97 % for a nominal 95 % from
:data:`MIN_INTERVAL_SEEDS` = 4 seeds on. With fewer seeds no candidate procedure covers
in every simulated setting, so :func:`paired_difference` gives no interval there, only the
sign test over the seeds. Many comparisons are corrected together by Holm's step-down
procedure (:func:`holm_adjust`); :func:`verdict` reads "better" or "worse" only below
:data:`ALPHA`. NumPy and SciPy only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench import _checks

__all__ = ["IMAGE_AP_FILE", "read_image_ap", "LAST_EPOCHS", "final_value", "final_image_values", "bootstrap_interval",
           "INTERVAL_METHOD", "INTERVAL_METHODS", "MIN_INTERVAL_SEEDS", "ALPHA", "paired_interval", "paired_difference",
           "sign_test", "holm_adjust", "verdict"]

#: A run folder's file of every validation image's AP@k after each epoch, shape (epochs, validation images).
IMAGE_AP_FILE = "image_ap.npz"
#: A run's final value is the mean of this many last epochs (fewer when it has fewer).
LAST_EPOCHS = 3
#: Bootstrap resamples of the mean; chunked so memory stays below a few tens of MB.
_RESAMPLES = 2000
_CHUNK_ELEMENTS = 4_000_000
#: The paired interval the workbench prints (:func:`paired_interval`; its coverage: :mod:`workbench.evaluation.coverage`).
INTERVAL_METHOD = "crossed-t"
#: The candidate intervals measured side by side in the coverage simulation.
INTERVAL_METHODS = ("crossed-t", "seed-t", "crossed-mls", "two-level-bootstrap")
#: Fewest seeds with a 95 % paired interval: with 3, every candidate leaves 93–97 % coverage in some
#: simulated setting (crossed-t falls to about 92 %), so :func:`paired_difference` gives none.
MIN_INTERVAL_SEEDS = 4
#: "better" and "worse" need a p-value (Holm-adjusted across a grid) below this.
ALPHA = 0.05


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


def _mean_squares(differences: np.ndarray):
    """Grand mean and the two-way (seeds × images) ANOVA mean squares of ``differences`` (..., S, N)."""
    num_seeds, num_images = differences.shape[-2:]
    grand = differences.mean(axis=(-2, -1))
    seed_means = differences.mean(axis=-1)
    ms_seeds = num_images * seed_means.var(axis=-1, ddof=1)
    if num_images < 2:
        zeros = np.zeros_like(grand)
        return grand, ms_seeds, zeros, zeros
    image_means = differences.mean(axis=-2)
    ss_images = num_seeds * ((image_means - grand[..., None]) ** 2).sum(axis=-1)
    ss_total = ((differences - grand[..., None, None]) ** 2).sum(axis=(-2, -1))
    ss_resid = np.maximum(ss_total - ms_seeds * (num_seeds - 1) - ss_images, 0.0)
    return (grand, ms_seeds, ss_images / (num_images - 1),
            ss_resid / ((num_seeds - 1) * (num_images - 1)))


def _t_interval(grand, variance, df, confidence):
    """``(low, high, p_value)`` of a t interval with these variances of the mean and degrees of freedom."""
    from scipy import stats

    error = np.sqrt(variance)
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.where(error > 0, stats.t.ppf((1 + confidence) / 2, df) * error, 0.0)
        pvalue = np.where(error > 0, 2 * stats.t.sf(np.abs(grand) / error, df), np.where(grand == 0, 1.0, 0.0))
    return grand - half, grand + half, pvalue


def _bootstrap_means(differences: np.ndarray, num_resamples: int, rng) -> np.ndarray:
    """Two-level bootstrap means (..., resamples): seeds with replacement, then images with replacement (the same for every seed)."""
    num_seeds, num_images = differences.shape[-2:]
    counts = rng.multinomial(num_images, np.full(num_images, 1 / num_images), size=num_resamples) / num_images
    seeds = rng.integers(0, num_seeds, size=(num_resamples, num_seeds))
    batch = differences.shape[:-2]
    means = np.empty((*batch, num_resamples))
    step = max(1, _CHUNK_ELEMENTS // max(1, int(np.prod(batch, dtype=np.int64)) * num_seeds))
    for start in range(0, num_resamples, step):
        stop = min(start + step, num_resamples)
        seed_means = differences @ counts[start:stop].T  # (..., S, chunk): each seed's mean over resampled images
        chosen = np.broadcast_to(seeds[start:stop].T, (*batch, num_seeds, stop - start))
        means[..., start:stop] = np.take_along_axis(seed_means, chosen, axis=-2).mean(axis=-2)
    return means


def paired_interval(differences, *, method: str = "crossed-t", confidence: float = 0.95,
                    num_resamples: int = _RESAMPLES, random_state=0) -> dict:
    """Interval of the mean paired difference by one of :data:`INTERVAL_METHODS`, for one or many studies at once.

    The model behind every method: the difference of seed ``s`` on image ``i`` is the true
    difference, plus a seed effect (the initialisation and data order), plus an image
    effect shared by every seed (some images favour one head), plus noise. The truth is
    the expectation over new seeds **and** new validation images.

    - ``crossed-t`` (the workbench's; :data:`INTERVAL_METHOD`): seeds and images as crossed
      random factors. The variance of the mean is ``(MS_seeds + MS_images − MS_resid) / (S N)``
      from the two-way ANOVA mean squares, never below the seed-only ``MS_seeds / (S N)``;
      a t interval with Satterthwaite's degrees of freedom, never fewer than the seeds'
      ``S − 1`` (exactly ``S − 1`` where the image part is estimated at or below zero).
    - ``seed-t``: the paired t interval over the seeds' mean differences (``S − 1`` degrees of
      freedom); blind to the image effect, which every seed shares.
    - ``crossed-mls``: half-width ``sqrt(t²_{S−1} MS_seeds + t²_{N−1} max(MS_images − MS_resid, 0)) / sqrt(S N)``
      (a modified-large-sample interval: conservative where both effects matter).
    - ``two-level-bootstrap``: percentile bootstrap, seeds with replacement, then images
      with replacement (the same images for every seed); the workbench's interval before
      it was measured (with 3 seeds its 2.5 % quantile is about the lowest seed's difference).

    Parameters
    ----------
    differences : array-like of shape (..., S, N)
        Paired differences (first − second) of ``S ≥ 2`` seeds on ``N`` validation images,
        no NaN; leading axes are independent studies.
    method : str, default="crossed-t"
    confidence : float, default=0.95
    num_resamples : int, default=2000
        ``two-level-bootstrap`` only.
    random_state : int or numpy Generator, default=0
        ``two-level-bootstrap`` only (the others are exact functions of the data).

    Returns
    -------
    dict of ndarray of shape (...)
        ``difference`` (mean), ``low``, ``high``, ``p_value`` (two-sided, of no difference;
        NaN for ``crossed-mls`` and ``two-level-bootstrap``) and ``df`` (NaN where not a t interval).
    """
    from scipy import stats

    if method not in INTERVAL_METHODS:
        raise ValueError(f"Unknown interval method {method!r}; choose one of {', '.join(INTERVAL_METHODS)}.")
    confidence = _checks.number(confidence, "confidence", positive=True)
    if confidence >= 1:
        raise ValueError(f"confidence must be below 1 (for example 0.95); got {confidence}.")
    differences = np.asarray(differences, dtype=np.float64)
    if differences.ndim < 2 or differences.shape[-2] < 2 or differences.shape[-1] < 1 or np.isnan(differences).any():
        raise ValueError(f"differences must be (..., seeds, images) with at least 2 seeds, 1 image and no NaN; "
                         f"got shape {differences.shape}.")
    num_seeds, num_images = differences.shape[-2:]
    grand, ms_seeds, ms_images, ms_resid = _mean_squares(differences)
    nan = np.full_like(grand, np.nan)
    if method == "two-level-bootstrap":
        means = _bootstrap_means(differences, _checks.integer(num_resamples, "num_resamples"), np.random.default_rng(random_state))
        low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2], axis=-1)
        return {"difference": grand, "low": low, "high": high, "p_value": nan, "df": nan}
    if method == "crossed-mls":
        quantile = stats.t.ppf((1 + confidence) / 2, [num_seeds - 1, max(num_images - 1, 1)])
        half = np.sqrt((quantile[0] ** 2 * ms_seeds + quantile[1] ** 2 * np.maximum(ms_images - ms_resid, 0))
                       / (num_seeds * num_images))
        return {"difference": grand, "low": grand - half, "high": grand + half, "p_value": nan, "df": nan}
    combined, df = ms_seeds, np.full_like(grand, num_seeds - 1.0)
    if method == "crossed-t" and num_images > 1:
        combined = ms_seeds + ms_images - ms_resid
        with np.errstate(divide="ignore", invalid="ignore"):
            satterthwaite = combined ** 2 / (ms_seeds ** 2 / (num_seeds - 1) + ms_images ** 2 / (num_images - 1)
                                             + ms_resid ** 2 / ((num_seeds - 1) * (num_images - 1)))
        seed_only = ~(combined > ms_seeds)  # the image part estimated at or below zero: the seeds' own t interval
        combined = np.where(seed_only, ms_seeds, combined)
        # never fewer degrees of freedom than the seeds' own: a small, noisily estimated image part (few images)
        # would otherwise turn a seed-only interval into a far wider one
        df = np.where(seed_only, num_seeds - 1.0, np.maximum(satterthwaite, num_seeds - 1.0))
    low, high, pvalue = _t_interval(grand, combined / (num_seeds * num_images), df, confidence)
    return {"difference": grand, "low": low, "high": high, "p_value": pvalue, "df": df}


def sign_test(values) -> float:
    """Exact two-sided sign test of a median of zero (``scipy.stats.binomtest``); zeros left out, 1.0 without any other."""
    from scipy import stats

    values = np.asarray(values, dtype=np.float64).ravel()
    values = values[values != 0]
    if not len(values):
        return 1.0
    return float(stats.binomtest(int(np.sum(values > 0)), len(values), 0.5).pvalue)


def holm_adjust(p_values) -> list:
    """Holm's step-down adjusted p-values of one family of tests (``None`` or NaN: no test, left out of the family).

    The ``j``-th smallest of ``m`` p-values becomes ``max over i ≤ j of min(1, (m − i + 1) p_(i))``:
    a hypothesis is rejected at level α by Holm's procedure exactly when its adjusted
    p-value is at most α (the family-wise error rate stays at most α).

    Parameters
    ----------
    p_values : sequence of float or None, length M

    Returns
    -------
    list of float or None, length M
        In the order given.
    """
    values = np.array([np.nan if value is None else float(value) for value in p_values], dtype=np.float64)
    defined = np.flatnonzero(~np.isnan(values))
    adjusted = [None] * len(values)
    order = defined[np.argsort(values[defined], kind="stable")]
    size = len(order)
    running = 0.0
    for position, index in enumerate(order):
        running = max(running, min(1.0, float((size - position) * values[index])))
        adjusted[index] = running
    return adjusted


def verdict(difference, p_value, *, alpha: float = ALPHA) -> str:
    """``"better"`` or ``"worse"`` (by the sign of ``difference``) when ``p_value < alpha``, else ``"no difference"``."""
    if p_value is None or difference is None or np.isnan(p_value) or not p_value < alpha or difference == 0:
        return "no difference"
    return "better" if difference > 0 else "worse"


def paired_difference(first, second, *, confidence: float = 0.95) -> dict:
    """Does ``first`` beat ``second``? Paired by seed and by validation image.

    With at least :data:`MIN_INTERVAL_SEEDS` seeds: the ``crossed-t`` interval of
    :func:`paired_interval` (seeds and images both random; its coverage is measured by
    :mod:`workbench.evaluation.coverage`) and its p-value. With fewer seeds no interval
    reaches its nominal coverage, so none is given: the p-value is the exact sign test
    over the seeds' differences and ``note`` says so ("3 seeds: too few for a 95 %
    interval; the difference is positive in 3 of 3 seeds").

    Parameters
    ----------
    first, second : array-like of shape (S, N)
        Final per-image values (:func:`final_image_values`) of ``S`` seeds of two heads,
        seed ``s`` of one paired with seed ``s`` of the other, on the same ``N``
        validation images (an image NaN in any run is left out).
    confidence : float, default=0.95

    Returns
    -------
    dict
        ``difference`` (mean of first − second; ``None`` without images), ``low``/``high``
        (the interval; ``None`` with fewer than :data:`MIN_INTERVAL_SEEDS` seeds),
        ``method`` (``"crossed-t"`` or ``"sign test"``), ``p_value`` (two-sided, of no
        difference), ``df``, ``num_seeds``, ``num_images``, ``seed_differences`` (each
        seed's mean difference), ``wins`` (seeds where first is higher), ``note`` (why
        there is no interval, or ``None``) and ``verdict`` (:func:`verdict` of this one
        test, uncorrected: ``better``, ``worse`` or ``no difference``).
    """
    first = np.atleast_2d(np.asarray(first, dtype=np.float64))
    second = np.atleast_2d(np.asarray(second, dtype=np.float64))
    if first.shape != second.shape:
        raise ValueError(f"Paired values must have one shape (seeds × images); got {first.shape} and {second.shape}.")
    defined = ~(np.isnan(first).any(axis=0) | np.isnan(second).any(axis=0))
    differences = (first - second)[:, defined]
    num_seeds, num_images = differences.shape
    result = {"difference": None, "low": None, "high": None, "method": None, "p_value": None, "df": None,
              "num_seeds": int(num_seeds), "num_images": int(num_images), "seed_differences": [], "wins": 0,
              "note": None, "verdict": "no difference"}
    if not num_images:
        result["note"] = "no validation image is defined in every run"
        return result
    per_seed = differences.mean(axis=1)
    result.update(difference=float(per_seed.mean()), seed_differences=[float(value) for value in per_seed],
                  wins=int(np.sum(per_seed > 0)))
    if num_seeds >= MIN_INTERVAL_SEEDS:
        interval = paired_interval(differences, method=INTERVAL_METHOD, confidence=confidence)
        result.update(low=float(interval["low"]), high=float(interval["high"]), method=INTERVAL_METHOD,
                      p_value=float(interval["p_value"]), df=float(interval["df"]))
    else:
        seeds = f"{num_seeds} seed{'s' if num_seeds != 1 else ''}"
        result.update(method="sign test", p_value=sign_test(per_seed),
                      note=f"{seeds}: too few for a {100 * confidence:g} % interval; the difference is positive in "
                           f"{result['wins']} of {seeds}")
    result["verdict"] = verdict(result["difference"], result["p_value"])
    return result
