"""Read a Prometheus text scrape into samples the metrics tests can compare before and after traffic."""
from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

#: (sample name, sorted label pairs) -> value.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of a text exposition (``_bucket``/``_sum``/``_count`` of histograms included)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 when none)."""
    wanted = set(labels.items())
    return sum(value for (sample, pairs), value in samples.items() if sample == name and wanted <= set(pairs))


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much :func:`total` moved between two scrapes."""
    return total(after, name, **labels) - total(before, name, **labels)


def label_sets(samples: Samples, prefix: str = "realtime_") -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """The distinct series (name and labels, ``le`` left out) of the metrics named ``prefix…``."""
    return {
        (name, tuple(pair for pair in pairs if pair[0] != "le"))
        for name, pairs in samples
        if name.startswith(prefix)
    }


def label_values(samples: Samples, label: str, prefix: str = "realtime_") -> set[str]:
    """Every value ``label`` takes across the metrics named ``prefix…``."""
    return {value for name, pairs in samples if name.startswith(prefix) for key, value in pairs if key == label}


def names(samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float]) -> set[str]:
    """The sample names of a scrape."""
    return {name for name, _ in samples}
