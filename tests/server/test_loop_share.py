"""How API calls share the event loop (mailcrate.server.turns): a threaded call's answer does not
wait behind every queued inline read, the reads keep their order, and each call keeps its own
context variables (the request id and principal on its log lines).

Real asyncio loop and real threads; the "reads" are CPU-bound callables of a known length."""

from __future__ import annotations

import asyncio
import time

from mailcrate.logs import REQUEST_ID
from mailcrate.server.turns import LoopShare

READ_SECONDS = 0.001
READS = 400


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_threaded_answer_waits_for_a_turn_not_for_every_queued_read() -> None:
    async def scenario() -> tuple[float, float, list[int]]:
        share = LoopShare(2, budget=0.002)
        done: list[int] = []
        started = time.perf_counter()

        async def read(i: int) -> None:
            await share.inline(lambda: (_busy(READ_SECONDS), done.append(i)))

        async def threaded() -> float:
            await share.in_thread(time.sleep, 0.005)  # then needs the GIL from the busy loop
            return time.perf_counter() - started

        thread_call = asyncio.ensure_future(threaded())
        await asyncio.sleep(0)  # the threaded call is in flight before the reads arrive
        reads = [asyncio.ensure_future(read(i)) for i in range(READS)]  # ~0.4 s of reads
        answered = await thread_call
        await asyncio.gather(*reads)
        share.close()
        return answered, time.perf_counter() - started, done

    answered, total, order = asyncio.run(scenario())
    assert total >= READS * READ_SECONDS
    # Without turns the loop ran every read (~0.4 s) before resuming the threaded call.
    assert answered < total / 4, (answered, total)
    assert order == list(range(READS))  # first come, first served


def test_reads_run_at_once_when_nothing_is_in_a_thread() -> None:
    async def scenario() -> list[str]:
        share = LoopShare(1)
        seen: list[str] = []
        # No threaded call in flight: the read runs inside the awaiting task's step.
        result = await share.inline(lambda: seen.append("ran") or "value")
        share.close()
        return [*seen, result]

    assert asyncio.run(scenario()) == ["ran", "value"]


def test_each_call_keeps_its_own_context() -> None:
    async def scenario() -> list[str | None]:
        share = LoopShare(1)

        def handler(request_id: str) -> str | None:
            before = REQUEST_ID.get()  # None unless a previous call's value leaked
            REQUEST_ID.set(request_id)
            return before

        seen = [await share.in_thread(handler, f"thread-{i}") for i in range(3)]
        blocker = asyncio.ensure_future(share.in_thread(time.sleep, 0.05))  # queue the reads
        await asyncio.sleep(0)
        seen += await asyncio.gather(*(share.inline(handler, f"inline-{i}") for i in range(3)))
        await blocker
        share.close()
        return seen

    assert asyncio.run(scenario()) == [None] * 6


def test_turns_are_short_while_a_thread_holds_the_write_lock() -> None:
    """A writer's transaction gives up the GIL at each SQLite call, and the loop took it for a
    whole 2 ms turn of reads each time; while the database's write lock is held (``writing``),
    a turn runs reads for at most WRITER_BUDGET (0.3 ms), so the transaction, and every writer
    queued behind its lock, gets the GIL back after one or two reads."""

    def reads_per_turn(writing: bool) -> list[int]:
        done: list[int] = []
        per_turn: list[int] = []

        class Counted(LoopShare):
            def _turn(self) -> None:
                before = len(done)
                super()._turn()
                per_turn.append(len(done) - before)

        async def scenario() -> None:
            share = Counted(1, budget=0.002, writing=lambda: writing)
            threaded = asyncio.ensure_future(share.in_thread(time.sleep, 0.05))
            await asyncio.sleep(0)  # in flight: the reads below take turns
            await asyncio.gather(*(share.inline(lambda: (_busy(0.0001), done.append(1))) for _ in range(200)))
            await threaded
            share.close()

        asyncio.run(scenario())
        assert len(done) == 200
        return per_turn

    assert max(reads_per_turn(writing=True)) <= 4  # 0.3 ms of 0.1 ms reads (+ the one that crosses)
    assert max(reads_per_turn(writing=False)) >= 10  # 2 ms of them
