"""Full collections paced for a worker with many sockets (``realtime.sockets.collector``): what survives a
full collection is frozen out of the next ones, and everything is scanned again once per interval."""
from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from realtime.sockets.collector import FULL_EVERY, FullCollectionPacing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pacing(clock: Clock) -> Iterator[FullCollectionPacing]:
    """Installed for one test, with automatic collections off (only the test's own ``gc.collect`` calls
    happen, so none freezes objects mid-test); the collector's state is restored after it."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    gc.disable()
    paced = FullCollectionPacing(60, clock)
    paced.install()
    yield paced
    paced.uninstall()
    gc.unfreeze()
    gc.set_threshold(*threshold)
    if enabled:
        gc.enable()


def survivors(count: int) -> list[list[int]]:
    """``count`` objects the collector tracks, kept alive by the caller."""
    return [[index] for index in range(count)]


def scanned(objects: list[list[int]]) -> int:
    """How many of ``objects`` the collector would still scan (frozen ones are in no generation)."""
    ids = {id(obj) for obj in gc.get_objects()}
    return sum(1 for obj in objects if id(obj) in ids)


def test_what_survives_a_full_collection_is_frozen_out_of_the_next(pacing: FullCollectionPacing) -> None:
    kept = survivors(10_000)
    assert scanned(kept) == len(kept)

    gc.collect()

    assert pacing.full_collections == 1
    assert scanned(kept) == 0
    younger = survivors(1_000)
    assert scanned(younger) == len(younger), "younger objects stay scanned"


def test_frozen_objects_are_still_freed_by_reference_counts(pacing: FullCollectionPacing) -> None:
    kept = survivors(10_000)
    gc.collect()
    frozen = gc.get_freeze_count()

    del kept

    assert gc.get_freeze_count() <= frozen - 10_000


def test_once_per_interval_everything_is_unfrozen_for_one_full_scan(
    pacing: FullCollectionPacing, clock: Clock
) -> None:
    kept = survivors(1_000)
    gc.collect()
    assert gc.get_freeze_count() >= len(kept)

    clock.now += 59
    gc.collect()
    assert gc.get_freeze_count() >= len(kept) and pacing.rescans == 0

    clock.now += 1
    gc.collect()
    assert gc.get_freeze_count() == 0 and pacing.rescans == 1, "the next full collection scans the whole heap"

    gc.collect()
    assert gc.get_freeze_count() >= len(kept), "and freezing starts over"


def test_younger_collections_do_not_freeze(pacing: FullCollectionPacing) -> None:
    kept = survivors(1_000)
    frozen = gc.get_freeze_count()

    gc.collect(1)

    assert pacing.full_collections == 0
    assert gc.get_freeze_count() == frozen
    assert kept


def test_full_collections_come_at_the_default_pace_and_install_is_idempotent(pacing: FullCollectionPacing) -> None:
    pacing.install()

    assert gc.get_threshold()[2] == FULL_EVERY
    assert gc.callbacks.count(pacing._observe) == 1
