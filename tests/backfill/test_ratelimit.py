"""The write pacer, on a fake clock: Firestore's 500/50/5 ramp, a ceiling, no bursts."""

from __future__ import annotations

import pytest

from backfill.ratelimit import WriteRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def limiter(clock: FakeClock, **kwargs: float) -> WriteRateLimiter:
    return WriteRateLimiter(clock=clock, sleep=clock.sleep, **kwargs)


def test_the_rate_ramps_by_half_every_five_minutes_up_to_the_ceiling() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=1500)
    assert [pacer.rate(clock.now + t) for t in (0, 299, 300, 600, 900, 3600)] == [
        500, 500, 750, 1125, 1500, 1500]


def test_batches_are_paced_evenly() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=10_000)
    for _ in range(4):
        pacer.acquire(250)
    assert clock.slept == [0.5, 0.5, 0.5]  # 250 writes at 500/s: one batch per half second


def test_no_burst_after_an_idle_spell() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=100, ceiling=100)
    pacer.acquire(100)
    clock.now += 60  # idle: no credit piles up
    pacer.acquire(100)
    pacer.acquire(100)
    assert clock.slept == [1.0]


def test_a_ceiling_of_zero_turns_pacing_off() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=0)
    assert not pacer.enabled
    for _ in range(10):
        assert pacer.acquire(500) == 0.0
    assert clock.slept == []


def test_a_low_ceiling_caps_the_start() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=50)
    pacer.acquire(50)
    pacer.acquire(50)
    assert clock.slept == [1.0]


def test_the_initial_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        WriteRateLimiter(initial=0, ceiling=10)


def test_a_rate_set_while_running_is_fixed_from_then_on() -> None:
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=10_000)
    pacer.set_rate(100)
    assert [pacer.rate(clock.now + t) for t in (0, 300, 3600)] == [100, 100, 100]
    pacer.acquire(100)
    pacer.acquire(100)
    assert clock.slept == [1.0]
    pacer.set_rate(0)
    assert not pacer.enabled and pacer.acquire(10_000) == 0.0


def test_a_write_waiting_its_turn_takes_it_again_at_a_new_rate() -> None:
    import threading
    import time

    pacer = WriteRateLimiter(initial=1, ceiling=1)  # the real clock: a turn a second
    pacer.acquire(1)
    waited: list[float] = []
    waiting = threading.Thread(target=lambda: waited.append(pacer.acquire(30)))
    started = time.monotonic()
    waiting.start()
    time.sleep(0.3)
    pacer.set_rate(0)  # unpaced: the write waiting 1 s (then 30 s) goes at once
    waiting.join(5)
    assert not waiting.is_alive() and time.monotonic() - started < 1.0
    assert waited and waited[0] < 1.0


def test_a_run_of_weeks_at_a_low_rate_keeps_its_rate() -> None:
    """Before: after about 6 days at a fixed rate, 1.5 to the power of the ramp's steps
    overflowed, and every batch failed with OverflowError."""
    clock = FakeClock()
    pacer = limiter(clock, initial=500, ceiling=1)
    assert pacer.rate(clock.now + 30 * 86_400) == 1
    ramping = limiter(clock, initial=500, ceiling=1e308)
    assert ramping.rate(clock.now + 365 * 86_400) == 1e308
