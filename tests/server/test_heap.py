"""The serve process's startup heap is exempted from the cyclic collector (mailcrate.server.heap):
what startup built survives it, garbage left by startup does not get frozen with it."""

from __future__ import annotations

import gc
import weakref

from mailcrate.server.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_startup_garbage_is_collected_and_the_rest_is_frozen() -> None:
    kept = _Node()
    garbage_a, garbage_b = _Node(), _Node()
    garbage_a.other, garbage_b.other = garbage_b, garbage_a  # a cycle only the collector frees
    dead = weakref.ref(garbage_a)
    del garbage_a, garbage_b
    gc.disable()  # no automatic pass may collect the cycle before the function does
    try:
        freeze_startup_heap()
        assert dead() is None  # collected before the freeze, not kept forever
        assert gc.get_freeze_count() > 0
        before = gc.get_freeze_count()
        gc.collect()
        assert gc.get_freeze_count() == before  # frozen objects stay out of full collections
        assert kept.other is None
    finally:
        gc.unfreeze()
        gc.enable()
