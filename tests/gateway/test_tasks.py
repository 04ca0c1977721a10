"""PollLoop: the loop of the send workers and the callback and SMPP outbox dispatchers."""

from __future__ import annotations

import asyncio

from gateway.base.tasks import PollLoop


class _Passes(PollLoop):
    """Answers each pass with the next of ``answers`` (0 once they run out)."""

    name = "test-loop"

    def __init__(self, answers, **kw) -> None:
        super().__init__(batch=2, poll_interval=3600.0, **kw)  # never polls on its own here
        self.answers = list(answers)
        self.passes = 0
        self.passed = asyncio.Condition()

    async def run_once(self) -> int:
        self.passes += 1
        answer = self.answers.pop(0) if self.answers else 0
        async with self.passed:
            self.passed.notify_all()
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await asyncio.Event().wait()
        return answer


async def _until(loop: _Passes, passes: int) -> None:
    async with asyncio.timeout(10), loop.passed:
        await loop.passed.wait_for(lambda: loop.passes >= passes)


async def test_full_batches_run_again_at_once_then_the_loop_waits_for_notify(caplog):
    loop = _Passes([2, 2, 1, RuntimeError("database gone"), 1])
    await loop.start()
    try:
        await _until(loop, 3)          # two full batches, then a short one: it waits
        await asyncio.sleep(0.05)
        assert loop.passes == 3 and loop.health() == "ok"
        loop.notify()
        await _until(loop, 4)          # the pass fails: logged, and the loop goes on
        loop.notify()
        await _until(loop, 5)
        assert any("poll_loop_failed loop=test-loop" in r.getMessage() for r in caplog.records)
    finally:
        await loop.stop()
    assert loop.health() == "stopping"


async def test_stop_waits_for_the_pass_in_hand_or_cancels_it_after_stop_timeout():
    stuck = _Passes(["hang"], stop_timeout=0.05)
    await stuck.start()
    await _until(stuck, 1)
    await stuck.stop()                 # returns: the hanging pass was cancelled
    assert stuck.passes == 1

    class Slow(_Passes):
        finished = False

        async def run_once(self) -> int:
            await super().run_once()
            await asyncio.sleep(0.05)
            self.finished = True
            return 0

    slow = Slow([])
    await slow.start()
    await _until(slow, 1)
    await slow.stop()                  # no stop_timeout: the pass ends first
    assert slow.finished
