"""The message path's counts, tallied in the process and written at most a second later
(:mod:`realtime.metrics.tally`): the same values as prometheus_client's own ``inc`` and ``observe``."""
from __future__ import annotations

import random

import gevent
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram

from realtime.metrics import tally


def values(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
    }


@pytest.fixture
def pair() -> tuple[CollectorRegistry, CollectorRegistry]:
    return CollectorRegistry(), CollectorRegistry()


def test_tallied_counts_and_observations_write_what_direct_ones_write(pair: tuple[CollectorRegistry, ...]) -> None:
    direct, tallied = pair
    buckets = (0, 1, 2.5, 10, 100)
    made = [
        (Counter("c", "c", ["event"], registry=r), Histogram("h", "h", ["event"], buckets=buckets, registry=r),
         Histogram("plain", "p", buckets=buckets, registry=r))
        for r in (direct, tallied)
    ]
    rng = random.Random(3)
    for _ in range(2000):
        label, value = rng.choice(["a", "b"]), rng.choice([0, 1, 2.5, 3, 10, 10.5, 99, 1e6, rng.uniform(0, 200)])
        made[0][0].labels(label).inc(2)
        made[0][1].labels(label).observe(value)
        made[0][2].observe(value)
        tally.count(made[1][0].labels(label), 2)
        tally.observe(made[1][1].labels(label), value)
        tally.observe(made[1][2], value)
    assert values(tallied) != values(direct), "nothing written before the flush"
    tally.flush()
    assert values(tallied) == pytest.approx(values(direct))


def test_pending_counts_are_written_a_second_later_by_the_hub() -> None:
    registry = CollectorRegistry()
    counter = Counter("later", "later", registry=registry)
    tally.count(counter)
    assert counter._value.get() == 0
    gevent.sleep(tally.FLUSH_SECONDS + 0.2)
    assert counter._value.get() == 1
    tally.count(counter, 4)
    tally.flush()
    gevent.sleep(tally.FLUSH_SECONDS + 0.2)
    assert counter._value.get() == 5, "the flush that ran first took the pending counts, once"
