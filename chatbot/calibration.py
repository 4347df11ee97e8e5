"""Is a confidence a probability? Reliability (calibration) and risk–coverage tables.

Both functions take one confidence per question (what the system said, a probability in
[0, 1]) and whether that question came out right (e.g. the top passage held an expected
answer), and return plain rows a report or a bench script prints:

- :func:`reliability`: questions grouped into equal-width confidence bins; per bin the mean
  confidence (predicted) against the fraction that was right (observed), and the expected
  calibration error (ECE) over all bins. A calibrated system has observed ≈ predicted in every
  bin and an ECE near 0.
- :func:`risk_coverage`: for each threshold, the share of questions at or above it (coverage:
  what would be answered) and the share of those that are wrong (risk). This is the table the
  answer and "possible answer" thresholds are chosen from.

Pure numpy, no state; inputs are any sequences (lists, arrays).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

DEFAULT_BINS = 10


class ReliabilityBin(NamedTuple):
    """One non-empty bin of :func:`reliability`: confidences in ``[lower, upper)`` (the last
    bin also holds ``upper`` = 1), how many there were, their mean (``predicted``) and the
    fraction of them that was right (``observed``)."""

    lower: float
    upper: float
    count: int
    predicted: float
    observed: float


class Reliability(NamedTuple):
    """:func:`reliability`'s result: the non-empty ``bins`` in ascending order, the expected
    calibration error ``ece`` and the number of questions ``n``. Unpacks as
    ``bins, ece, n = reliability(...)``."""

    bins: list[ReliabilityBin]
    ece: float
    n: int


class RiskCoverage(NamedTuple):
    """One row of :func:`risk_coverage`: at ``threshold``, ``count`` questions have a
    confidence at or above it, ``coverage`` = count / n and ``risk`` = the fraction of those
    ``count`` that is wrong."""

    threshold: float
    coverage: float
    risk: float
    count: int


def _arrays(confidences: Sequence[float], correct: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    conf = np.asarray(confidences, dtype=np.float64).reshape(-1)
    right = np.asarray(correct, dtype=bool).reshape(-1)
    if conf.shape != right.shape:
        raise ValueError(f"{conf.size} confidences but {right.size} correct flags")
    if np.isnan(conf).any():
        raise ValueError("a confidence is NaN")
    return conf, right


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = DEFAULT_BINS
) -> Reliability:
    """Predicted vs observed per confidence bin, and the expected calibration error.

    The bins are ``bins`` equal-width intervals of [0, 1]: bin ``i`` holds confidences in
    ``[i / bins, (i + 1) / bins)``, the last one also 1.0 (a confidence below 0 or above 1
    counts in the first or last bin). Per non-empty bin: ``predicted`` is the mean confidence,
    ``observed`` the fraction of ``correct``. Empty bins are left out of the rows and add
    nothing to the error::

        ECE = sum over bins of count / n * |observed - predicted|

    so it is the mean gap between what was said and what happened, weighted by how many
    questions said it; 0 for perfectly calibrated data, at most 1. With no questions the
    result has no bins and an ECE of 0.0. Raises ValueError if the lengths differ, a
    confidence is NaN or ``bins`` < 1.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, not {bins}")
    conf, right = _arrays(confidences, correct)
    n = int(conf.size)
    # Edges as i / bins (not linspace) so that 0.3 falls in [0.3, 0.4) as printed.
    edges = np.arange(bins + 1, dtype=np.float64) / bins
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    sum_conf = np.bincount(which, weights=conf, minlength=bins)
    sum_right = np.bincount(which, weights=right.astype(np.float64), minlength=bins)
    rows: list[ReliabilityBin] = []
    ece = 0.0
    for i in np.flatnonzero(counts):
        count = int(counts[i])
        predicted = float(sum_conf[i] / count)
        observed = float(sum_right[i] / count)
        lower, upper = float(edges[i]), float(edges[i + 1])
        rows.append(ReliabilityBin(lower, upper, count, predicted, observed))
        ece += count / n * abs(observed - predicted)
    return Reliability(rows, float(ece), n)


def risk_coverage(
    confidences: Sequence[float], correct: Sequence[bool], thresholds: Sequence[float]
) -> list[RiskCoverage]:
    """For each of ``thresholds`` (in the order given): how many questions have a confidence
    at or above it, that share of all questions (coverage) and the share of them that is wrong
    (risk).

    Coverage is 0.0 when there are no questions; risk is 0.0 when no question reaches the
    threshold (nothing answered, nothing answered wrong). Raises ValueError if the lengths
    differ or a confidence is NaN.
    """
    conf, right = _arrays(confidences, correct)
    n = int(conf.size)
    order = np.argsort(conf, kind="stable")
    sorted_conf = conf[order]
    # wrong_from[i] = wrong answers among the questions from sorted position i on
    wrong_from = np.concatenate([np.cumsum((~right[order])[::-1])[::-1], [0]])
    rows: list[RiskCoverage] = []
    for t in thresholds:
        first = int(np.searchsorted(sorted_conf, float(t), side="left"))
        count = n - first
        wrong = int(wrong_from[first])
        rows.append(
            RiskCoverage(
                threshold=float(t),
                coverage=count / n if n else 0.0,
                risk=wrong / count if count else 0.0,
                count=count,
            )
        )
    return rows


__all__ = [
    "DEFAULT_BINS",
    "Reliability",
    "ReliabilityBin",
    "RiskCoverage",
    "reliability",
    "risk_coverage",
]
