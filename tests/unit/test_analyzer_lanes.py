"""The per-partition ledger behind the analyzer's lanes: a commit never passes a record that is not
done — still in a lane, or dropped to be delivered again."""

from __future__ import annotations

from analyzer.lanes import Ledger


def test_commit_stops_at_the_first_record_not_settled() -> None:
    led = Ledger()
    for o in range(10, 16):
        led.dispatched(0, o)
    for o in (10, 11, 13, 14):  # another camera's lane finished 13, 14 before 12
        led.settled(0, o)
    assert led.commit_offset(0) == 12
    led.settled(0, 12)
    assert led.commit_offset(0) == 15
    led.settled(0, 15)
    assert led.targets() == {0: 16}


def test_a_dropped_record_holds_the_commit_even_when_later_ones_settle() -> None:
    led = Ledger()
    for o in range(20, 26):
        led.dispatched(0, o)
    led.dropped(0, 22)  # a failed frame; 23 went to a lane that was already past it
    led.dropped(0, 21)  # dropped from another camera's queue: earlier than the failure
    for o in (20, 23, 24, 25):
        led.settled(0, o)
    assert led.commit_offset(0) == 21 and led.floor[0] == 21  # the rewind goes back to 21, not 22
    led.rewound(0, 21)
    assert led.commit_offset(0) == 21 and not led.in_flight(0)
    led.dispatched(0, 21)
    led.settled(0, 21)
    assert led.commit_offset(0) == 22


def test_partitions_are_independent_and_forgotten_on_revoke() -> None:
    led = Ledger()
    led.dispatched(0, 5)
    led.dispatched(1, 7)
    led.settled(1, 7)
    assert led.targets() == {0: 5, 1: 8}
    led.forget(0)
    assert led.targets() == {1: 8}
