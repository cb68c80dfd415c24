"""serve's request metrics, counted in its own memory (mailcrate.server.metrics._Requests), are
exposed as prometheus_client's own Counter and Histogram would expose the same observations:
names, help, types, labels, buckets and values, read back with prometheus_client's text parser."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from mailcrate.server.metrics import LATENCY_BUCKETS, _Requests

#: Bucket bounds exactly (an observation equal to a bound is in its bucket: "le"), between
#: bounds, zero, past the last finite bound, and several statuses of one operation.
OBSERVATIONS = [
    ("kms", "Encrypt", 200, 0.0004),
    ("kms", "Encrypt", 200, 0.001),
    ("kms", "Encrypt", 200, 0.0025),
    ("kms", "Encrypt", 400, 0.003),
    ("kms", "Encrypt", 200, 0.0),
    ("s3", "GetObject", 200, 7.5),
    ("s3", "GetObject", 200, 60.0),
    ("s3", "GetObject", 206, 61.0),
    ("-", "-", 404, 0.02),
]


def _families(text: bytes) -> dict[str, tuple[str, str, set[tuple[str, tuple, float]]]]:
    """name -> (type, help, samples), ``_created`` samples left out (multiprocess mode, which
    serve's metrics were in before, has none)."""
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        if family.name.endswith("_created"):
            continue
        samples = {
            (s.name, tuple(sorted(s.labels.items())), s.value)
            for s in family.samples
            if not s.name.endswith("_created")
        }
        out[family.name] = (family.type, family.documentation, samples)
    return out


def _library_exposition(observations: list[tuple[str, str, int, float]]) -> bytes:
    registry = CollectorRegistry()
    requests = Counter(
        "mailcrate_requests",
        "API requests answered, by service, operation and HTTP status.",
        ["service", "operation", "status"],
        registry=registry,
    )
    latency = Histogram(
        "mailcrate_request_duration_seconds",
        "Time from a request's arrival at the dispatcher to its answer (the body of a streamed "
        "S3 GetObject excluded), by service and operation.",
        ["service", "operation"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    for service, operation, status, seconds in observations:
        requests.labels(service, operation, str(status)).inc()
        latency.labels(service, operation).observe(seconds)
    return generate_latest(registry)


def _ours(requests: _Requests) -> bytes:
    registry = CollectorRegistry()
    registry.register(requests)
    return generate_latest(registry)


def test_the_exposition_matches_prometheus_clients_own_metrics() -> None:
    requests = _Requests()
    for observation in OBSERVATIONS:
        requests.observe(*observation)
    ours, theirs = _families(_ours(requests)), _families(_library_exposition(OBSERVATIONS))
    assert ours == theirs
    assert {name for name in ours} == {"mailcrate_requests", "mailcrate_request_duration_seconds"}


def test_concurrent_requests_are_all_counted() -> None:
    """8 threads answering 2,000 requests each: the totals are exact."""
    requests = _Requests()
    observations = [("kms", "Encrypt", 200, 0.0011 * (i % 7)) for i in range(2000)]

    def answer() -> None:
        for observation in observations:
            requests.observe(*observation)

    threads = [threading.Thread(target=answer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _families(_ours(requests)) == _families(_library_exposition(observations * 8))
