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


def test_stamps_that_go_back_for_good_restart_the_pairing():
    """Before session 30 one pair stamped ahead (or a bag replayed in a loop) made the pairer drop every later
    frame as out of order, for ever: perception and tracks went silent without recovering."""
    pairer = ApproximateTimePairer(slop=0.01, resync_after=4)
    pairer.add_first(1000.0, "ahead")
    assert pairer.add_second(1000.0, "ahead") is not None
    pairs = []
    for k in range(6):
        t = 1.0 + 0.1 * k
        pairer.add_first(t, f"d{k}")
        pairs.append(pairer.add_second(t + 0.001, f"c{k}"))
    assert pairer.resyncs == 1 and pairer.out_of_order == 4
    assert [p.first for p in pairs if p is not None] == ["d2", "d3", "d4", "d5"], "frames after the jump are paired"
    pairer.add_first(1.45, "late")  # one late frame after that is still just out of order
    assert pairer.resyncs == 1 and pairer.out_of_order == 5


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
        resyncs = pairer.resyncs
        pair = pairer.add_first(stamp, stamp) if is_depth else pairer.add_second(stamp, stamp)
        if pairer.resyncs > resyncs:
            last = float("-inf")  # the stamps went back for good: pairs start again from there
        if pair is not None:
            assert abs(pair.first - pair.second) <= 0.02
            assert min(pair.first, pair.second) > last
            last = max(pair.first, pair.second)
