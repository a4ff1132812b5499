"""Property tests of the largest-remainder split used to distribute a conversion's USDT."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from batching.distribution import largest_remainder_split

totals = st.integers(min_value=0, max_value=10**15)  # up to 10^9 USDT in 10^-6 units
weights = st.lists(st.integers(min_value=0, max_value=10**24), min_size=1, max_size=60).filter(lambda w: sum(w) > 0)


@given(total=totals, weights=weights)
def test_parts_sum_exactly_to_the_total(total: int, weights: list[int]) -> None:
    assert sum(largest_remainder_split(total, weights)) == total


@given(total=totals, weights=weights)
def test_each_part_is_within_one_unit_of_its_exact_share(total: int, weights: list[int]) -> None:
    weight_sum = sum(weights)
    for part, weight in zip(largest_remainder_split(total, weights), weights, strict=True):
        exact = Fraction(total * weight, weight_sum)
        assert abs(part - exact) < 1


@given(total=totals, weights=weights)
def test_no_negative_part_and_zero_weight_gets_nothing(total: int, weights: list[int]) -> None:
    parts = largest_remainder_split(total, weights)
    assert all(part >= 0 for part in parts)
    assert all(part == 0 for part, weight in zip(parts, weights, strict=True) if weight == 0)


@given(total=totals, weights=weights)
def test_deterministic(total: int, weights: list[int]) -> None:
    assert largest_remainder_split(total, weights) == largest_remainder_split(total, list(weights))


def test_ties_go_to_the_earlier_row() -> None:
    assert largest_remainder_split(2, [1, 1, 1]) == [1, 1, 0]
    assert largest_remainder_split(100, [1, 1, 1]) == [34, 33, 33]
