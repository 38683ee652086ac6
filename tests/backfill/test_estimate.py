"""The exact binomial bound of a sample's result, against known values and its own
definition."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backfill.estimate import Estimate, binomial_cdf, invalid_upper_bound


@pytest.mark.parametrize("invalid, sampled, bound", [
    (0, 100, 0.0295),  # the "rule of three" is 3/n = 0.030
    (0, 10, 0.2589),
    # Clopper-Pearson, one-sided 95%: the 0.95 quantile of Beta(invalid + 1, sampled -
    # invalid), checked apart by integrating that density numerically.
    (1, 100, 0.0466),
    (5, 100, 0.1019),
    (10, 50, 0.3157),
])
def test_known_bounds(invalid: int, sampled: int, bound: float) -> None:
    assert invalid_upper_bound(invalid, sampled) == pytest.approx(bound, abs=5e-4)


def test_the_operators_sentence() -> None:
    estimate = Estimate(invalid=0, sampled=100, total=3421)
    assert estimate.sentence() == ("0 invalid of 100 sampled: at most 3.0% of the 3,421 items "
                                   "are invalid (95% confidence)")
    assert estimate.upper_items == 101


def test_all_invalid_or_nothing_sampled_bounds_nothing() -> None:
    assert invalid_upper_bound(7, 7) == 1.0
    assert invalid_upper_bound(0, 0) == 1.0
    with pytest.raises(ValueError):
        invalid_upper_bound(3, 2)


@given(st.integers(1, 400), st.data())
@pytest.mark.slow
def test_the_bound_is_where_a_result_this_good_becomes_unlikely(sampled: int,
                                                                data: st.DataObject) -> None:
    invalid = data.draw(st.integers(0, sampled - 1))
    bound = invalid_upper_bound(invalid, sampled)
    assert invalid / sampled < bound < 1.0
    assert binomial_cdf(invalid, sampled, bound) == pytest.approx(0.05, abs=1e-6)
    # More invalid items seen, or fewer sampled, never gives a tighter bound.
    if invalid + 1 < sampled:
        assert invalid_upper_bound(invalid + 1, sampled) > bound
    assert invalid_upper_bound(invalid, sampled + 1) < bound
