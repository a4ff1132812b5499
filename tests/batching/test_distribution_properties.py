"""Property tests of the largest-remainder split used to distribute a conversion's USDT."""

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from batching.distribution import _ShareTally, largest_remainder_split

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


@given(total=totals, weights=weights)
def test_the_cut_found_from_the_remainder_bands_gives_the_same_parts(total: int, weights: list[int]) -> None:
    """What the streamed distribution does on PostgreSQL, in Python: the bands' counts locate the
    leftover units' cut, only that band is sorted, and every row at or above the cut gets a unit."""
    tally = _ShareTally(total, sum(weights))
    shares = [share for chunk in tally.shares([list(enumerate(weights))]) for share in chunk]
    extra = total - tally.floor_units
    cut = (tally.weight_sum, 0)
    if extra:
        low, high, offset = tally.band_of(extra)
        band = sorted(((rem, row) for row, _, rem in shares if low <= rem < high), key=lambda s: (-s[0], s[1]))
        cut = band[offset]
    parts = [floor + (rem > cut[0] or (rem == cut[0] and row <= cut[1])) for row, floor, rem in shares]
    assert parts == largest_remainder_split(total, weights)


def test_the_cut_when_every_remainder_is_in_one_band() -> None:
    tally = _ShareTally(5, 3)
    list(tally.shares([[(1, 1), (2, 1), (3, 1)]]))  # remainders 2, 2, 2; 2 units left over
    low, high, offset = tally.band_of(2)
    assert low <= 2 < high
    assert offset == 1
