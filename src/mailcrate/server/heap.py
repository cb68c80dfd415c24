"""Keeping the cyclic garbage collector's full passes short in a long-running server.

A ``serve`` process holds ~90,000 objects after startup that live as long as it does: the
botocore service models, SQLAlchemy's tables, the imported modules. CPython's full (generation 2)
collection walks every tracked object and stops every thread while it runs; under the
Start-under-load mix (BENCHMARKS.md) one ran every 2-3 s and took 25-90 ms, longer than a
Start's whole budget (issue 18: p99 < 100 ms). :func:`freeze_startup_heap` moves what startup
built into the permanent generation (``gc.freeze``), which collections skip: a full pass then
walks only what was allocated since. Those objects are still freed by reference counting; only
a reference cycle among them would never be collected, and startup builds none that it drops.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect once, then exempt every surviving object from later collections (the last
    startup hook: after the models, the tables and the worker pool exist)."""
    gc.collect()
    gc.freeze()
