"""Approximate-time pairing of colour and depth."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from armpilot.perception.pairing import ApproximateTimePairer


def test_pairs_nearest_within_slop():
    pairer = ApproximateTimePairer(slop=0.01)
    assert pairer.add_first(1.000, "d1") is None
    assert pairer.add_second(1.030, "c0") is None  # too far
    pair = pairer.add_first(1.031, "d2")
    assert (pair.first, pair.second, pair.stamp) == ("d2", "c0", 1.031)


def test_out_of_order_frames_are_counted_and_dropped():
    pairer = ApproximateTimePairer(slop=0.01)
    pairer.add_first(2.0, "d")
    assert pairer.add_second(2.001, "c") is not None
    assert pairer.add_first(1.5, "old") is None
    assert pairer.out_of_order == 1


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.floats(0, 10)), max_size=40))
def test_pairs_are_within_slop_and_increasing(events):
    pairer = ApproximateTimePairer(slop=0.02)
    last = float("-inf")
    for is_depth, stamp in events:
        pair = pairer.add_first(stamp, stamp) if is_depth else pairer.add_second(stamp, stamp)
        if pair is not None:
            assert abs(pair.first - pair.second) <= 0.02
            assert min(pair.first, pair.second) > last
            last = max(pair.first, pair.second)
