"""Tests for chatbot.calibration: reliability bins, ECE and risk–coverage on hand examples."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatbot.calibration import (
    Reliability,
    ReliabilityBin,
    RiskCoverage,
    reliability,
    risk_coverage,
)

# --------------------------------------------------------------------------- reliability


def test_perfectly_calibrated_data_has_zero_ece() -> None:
    # In each bin the fraction right equals the mean confidence exactly.
    conf = [0.25] * 4 + [0.75] * 4 + [1.0] * 2
    right = [True, False, False, False] + [True, True, True, False] + [True, True]
    rel = reliability(conf, right)
    assert rel.ece == pytest.approx(0.0, abs=1e-12)
    assert rel.n == 10
    assert rel.bins == [
        ReliabilityBin(0.2, 0.3, 4, 0.25, 0.25),
        ReliabilityBin(0.7, 0.8, 4, 0.75, 0.75),
        ReliabilityBin(0.9, 1.0, 2, 1.0, 1.0),  # 1.0 falls in the last bin
    ]


def test_hand_computed_example() -> None:
    """Five questions, 2 bins ([0, 0.5) and [0.5, 1]).

    low bin:  0.1 wrong, 0.3 right          -> predicted 0.2, observed 0.5, gap 0.3
    high bin: 0.6 right, 0.8 right, 0.9 wrong -> predicted 2.3/3, observed 2/3, gap 0.1
    ECE = 2/5 * 0.3 + 3/5 * 0.1 = 0.18
    """
    rel = reliability([0.1, 0.3, 0.6, 0.8, 0.9], [False, True, True, True, False], bins=2)
    low, high = rel.bins
    assert (low.lower, low.upper, low.count) == (0.0, 0.5, 2)
    assert (low.predicted, low.observed) == (pytest.approx(0.2), 0.5)
    assert (high.lower, high.upper, high.count) == (0.5, 1.0, 3)
    assert high.predicted == pytest.approx(2.3 / 3)
    assert high.observed == pytest.approx(2 / 3)
    assert rel.ece == pytest.approx(0.18)
    bins, ece, n = rel  # unpacks as a tuple
    assert (len(bins), n) == (2, 5) and ece == rel.ece


def test_empty_bins_are_skipped() -> None:
    rel = reliability([0.05, 0.95], [False, True])
    assert [(b.lower, b.upper) for b in rel.bins] == [(0.0, 0.1), (0.9, 1.0)]
    assert rel.ece == pytest.approx(0.5 * 0.05 + 0.5 * 0.05)


def test_all_equal_confidences() -> None:
    rel = reliability([0.7] * 4, [True, True, False, False])
    assert rel.bins == [ReliabilityBin(0.7, 0.8, 4, 0.7, 0.5)]
    assert rel.ece == pytest.approx(0.2)


def test_bin_edges_are_exact() -> None:
    # 0.3 and 0.7 land in [0.3, 0.4) and [0.7, 0.8) as printed, not in the bin below.
    rel = reliability([0.3, 0.7, 0.0], [True, True, True])
    assert [b.lower for b in rel.bins] == [0.0, 0.3, 0.7]
    assert [b.upper for b in rel.bins] == [0.1, 0.4, 0.8]


def test_out_of_range_confidences_fall_in_the_end_bins() -> None:
    rel = reliability([-0.2, 1.3], [False, True], bins=4)
    assert [(b.lower, b.upper, b.count) for b in rel.bins] == [(0.0, 0.25, 1), (0.75, 1.0, 1)]


def test_reliability_edge_cases() -> None:
    assert reliability([], []) == Reliability([], 0.0, 0)
    one = reliability(np.array([0.4]), np.array([True]), bins=1)
    assert one.bins == [ReliabilityBin(0.0, 1.0, 1, 0.4, 1.0)]
    assert one.ece == pytest.approx(0.6)
    with pytest.raises(ValueError, match="2 confidences but 1 correct"):
        reliability([0.1, 0.2], [True])
    with pytest.raises(ValueError, match="bins"):
        reliability([0.1], [True], bins=0)
    with pytest.raises(ValueError, match="NaN"):
        reliability([float("nan")], [True])


@given(
    st.lists(
        st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), min_size=1, max_size=60
    ),
    st.integers(min_value=1, max_value=20),
)
def test_reliability_matches_a_plain_loop(pairs: list[tuple[float, bool]], bins: int) -> None:
    conf = [c for c, _ in pairs]
    right = [r for _, r in pairs]
    rel = reliability(conf, right, bins=bins)
    assert sum(b.count for b in rel.bins) == len(pairs) == rel.n
    groups: dict[int, list[tuple[float, bool]]] = {}
    for c, r in pairs:
        i = min(next(j for j in range(bins, -1, -1) if c >= j / bins), bins - 1)
        groups.setdefault(i, []).append((c, r))
    expected = 0.0
    for i, group in groups.items():
        predicted = sum(c for c, _ in group) / len(group)
        observed = sum(r for _, r in group) / len(group)
        expected += len(group) / len(pairs) * abs(observed - predicted)
        assert i / bins in [b.lower for b in rel.bins]
    assert rel.ece == pytest.approx(expected, abs=1e-9)
    assert 0.0 <= rel.ece <= 1.0


# --------------------------------------------------------------------------- risk–coverage


def test_risk_coverage_hand_computed() -> None:
    """conf 0.2 wrong, 0.4 right, 0.5 wrong, 0.6 right, 0.9 right.

    at 0.0: all 5, 2 wrong       -> coverage 1.0, risk 0.4
    at 0.5: 0.5, 0.6, 0.9        -> coverage 0.6, risk 1/3 ("at or above": 0.5 counts)
    at 0.7: 0.9                  -> coverage 0.2, risk 0
    at 1.0: none                 -> coverage 0, risk 0
    """
    conf = [0.6, 0.2, 0.9, 0.5, 0.4]
    right = [True, False, True, False, True]
    rows = risk_coverage(conf, right, [0.0, 0.5, 0.7, 1.0])
    assert rows[0] == RiskCoverage(0.0, 1.0, 0.4, 5)
    assert rows[1].threshold == 0.5 and rows[1].count == 3
    assert (rows[1].coverage, rows[1].risk) == (0.6, pytest.approx(1 / 3))
    assert rows[2] == RiskCoverage(0.7, 0.2, 0.0, 1)
    assert rows[3] == RiskCoverage(1.0, 0.0, 0.0, 0)


def test_risk_coverage_keeps_the_order_given_and_handles_ties() -> None:
    rows = risk_coverage([0.5, 0.5, 0.5], [True, False, False], [0.6, 0.5, 0.5])
    assert [(r.threshold, r.count) for r in rows] == [(0.6, 0), (0.5, 3), (0.5, 3)]
    assert rows[1].risk == pytest.approx(2 / 3)


def test_risk_coverage_edge_cases() -> None:
    assert risk_coverage([], [], [0.5]) == [RiskCoverage(0.5, 0.0, 0.0, 0)]
    assert risk_coverage([0.3], [True], []) == []
    with pytest.raises(ValueError, match="1 confidences but 2 correct"):
        risk_coverage([0.3], [True, False], [0.5])


@given(
    st.lists(st.tuples(st.floats(min_value=0, max_value=1), st.booleans()), max_size=40),
    st.lists(st.floats(min_value=-0.5, max_value=1.5), max_size=6),
)
def test_risk_coverage_matches_a_plain_loop(
    pairs: list[tuple[float, bool]], thresholds: list[float]
) -> None:
    rows = risk_coverage([c for c, _ in pairs], [r for _, r in pairs], thresholds)
    for t, row in zip(thresholds, rows, strict=True):
        covered = [r for c, r in pairs if c >= t]
        assert row.count == len(covered)
        assert row.coverage == (len(covered) / len(pairs) if pairs else 0.0)
        assert row.risk == pytest.approx(
            sum(not r for r in covered) / len(covered) if covered else 0.0
        )
