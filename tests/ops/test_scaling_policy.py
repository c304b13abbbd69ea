"""The scaling policy, exercised through the simulator (same code the hook runs)."""

import math
import random

import pytest

from ops.scaling.policy import Decision, History, Observation, Settings, decide
from ops.scaling.simulate import TRACES, load_trace, simulate

BOOT, TASK, CONC, INTERVAL = 40.0, 2.0, 2, 10.0


def settings(**kw):
    return Settings(default_task_seconds=TASK, worker_concurrency=CONC, **kw)


def actions_between(result, start, end):
    return [(t, d) for t, d in result.decisions if start <= t < end and d.reason.startswith(("out", "in"))]


def poisson_trace(rate: float, seconds: int, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    out = []
    for _ in range(seconds):
        # Knuth's method: fine for small rates.
        limit, k, p = math.exp(-rate), 0, 1.0
        while True:
            p *= rng.random()
            if p <= limit:
                break
            k += 1
        out.append(k)
    return out


def assert_settles(result, load_seconds):
    """No scale-out once it has scaled in (no oscillation), and no action at all in the second half."""
    during = actions_between(result, 0, load_seconds)
    first_in = next((t for t, d in during if d.reason.startswith("in")), None)
    if first_in is not None:
        assert not [t for t, d in during if t > first_in and d.reason.startswith("out")], during
    assert actions_between(result, load_seconds / 2, load_seconds) == []


@pytest.mark.parametrize("rate", [1, 3, 4])
def test_at_a_steady_load_it_settles_and_then_makes_no_more_scaling_actions(rate):
    result = simulate([rate] * 3600, settings(), boot=BOOT, task=TASK, interval=INTERVAL)
    assert result.done == result.total
    assert actions_between(result, 300, 3600) == []
    need = math.ceil(rate * TASK / CONC)
    assert need <= result.pool[1800] <= need + 1  # what the load needs, at most one spare (the headroom)


@pytest.mark.parametrize("rate, seed", [(2.5, 7), (2.5, 11), (5.5, 7), (5.5, 11)])
def test_a_noisy_constant_load_also_settles(rate, seed):
    result = simulate(poisson_trace(rate, 7200, seed), settings(), boot=BOOT, task=TASK, interval=INTERVAL)
    assert result.done == result.total
    assert_settles(result, 7200)
    assert result.pool[7000] >= math.ceil(rate * TASK / CONC)  # enough for the load


def test_a_burst_of_1000_is_drained_within_the_bound_from_boot_time_and_capacity():
    trace = load_trace(TRACES / "burst_1000.csv")
    s = settings(max_workers=8)
    result = simulate(trace, s, boot=BOOT, task=TASK, interval=INTERVAL)
    # Bound: the hook sees the burst within one interval, new workers boot,
    # then the full pool (max x concurrency slots) works through it; one more
    # interval of slack for the tick that catches the end.
    bound = INTERVAL + BOOT + math.ceil(1000 / (s.max_workers * CONC)) * TASK + INTERVAL
    (drain,) = result.drain_seconds
    assert drain <= bound, (drain, bound)
    assert result.peak_workers == s.max_workers
    assert result.pool[-1] == s.min_workers  # and back to the minimum afterwards


@pytest.mark.parametrize("policy", ["backlog", "cpu", "step"])
@pytest.mark.parametrize("bounds", [(1, 8), (2, 20), (0, 3)])
def test_bounds_are_never_crossed(policy, bounds):
    lo, hi = bounds
    trace = [0] * 60 + [300] * 10 + [0] * 600 + [2] * 600
    s = settings(policy=policy, min_workers=lo, max_workers=hi)
    result = simulate(trace, s, boot=BOOT, task=TASK, interval=INTERVAL, initial=max(lo, 1))
    assert result.done == result.total
    assert max(result.pool) <= hi
    assert min(result.pool[100:]) >= lo
    assert all(lo <= d.desired <= hi or (lo == 0 and d.desired <= hi) for _, d in result.decisions)


def test_a_bound_of_20_is_reached_under_a_flood():
    trace = [0] * 30 + [500] * 20 + [0] * 900
    result = simulate(trace, settings(max_workers=20), boot=BOOT, task=TASK, interval=INTERVAL)
    assert result.peak_workers == 20


def test_with_min_zero_the_first_message_wakes_a_worker():
    s = settings(min_workers=0, max_workers=4)
    h = History()
    idle = decide(s, Observation(now=0, visible=0, in_flight=0, running=0, starting=0), h)
    assert idle.desired == 0
    woke = decide(s, Observation(now=10, visible=1, in_flight=0, running=0, starting=0), h)
    assert woke.desired == 1 and woke.reason.startswith("out")


def test_warming_workers_count_as_capacity():
    s = settings()
    h = History()
    first = decide(s, Observation(now=0, visible=200, in_flight=2, running=1, starting=0), h)
    assert first.desired > 1
    again = decide(s, Observation(now=10, visible=200, in_flight=2, running=1, starting=first.desired - 1), h)
    assert again.desired == first.desired  # no pile-on while they boot


def test_scale_in_waits_for_a_stable_window_and_goes_only_to_the_largest_need_seen():
    s = settings(scale_in_stable_seconds=60, scale_in_cooldown=0)
    h = History()
    wants = []
    for i, in_flight in enumerate([2, 6, 2, 2, 2, 2, 2, 2]):
        d: Decision = decide(s, Observation(now=i * 10, visible=0, in_flight=in_flight, running=5, starting=0), h)
        wants.append(d.desired)
    assert wants[:6] == [5] * 6  # holding through the window
    # in_flight 6 / 2 = 3 busy workers was the largest need in the window, and
    # scaling in keeps the headroom (0.25 of a worker): ceil(3.25) = 4.
    assert wants[6] == 4


def test_cpu_policy_grows_and_shrinks_by_its_ratios():
    s = settings(policy="cpu", scale_in_stable_seconds=0, scale_in_cooldown=0)
    h = History()
    assert decide(s, Observation(now=0, visible=5, in_flight=4, running=2, starting=0, cpu=0.9), h).desired == 4
    assert decide(s, Observation(now=10, visible=0, in_flight=0, running=4, starting=0, cpu=0.1), h).desired == 2
    held = decide(s, Observation(now=20, visible=0, in_flight=0, running=2, starting=0, cpu=None), h)
    assert held.desired == 2 and "no CPU" in held.reason


def test_the_simulator_table_has_the_three_policies_on_every_shipped_trace(capsys):
    from ops.scaling.simulate import main

    main(["--trace", "burst_1000"])
    out = capsys.readouterr().out
    for policy in ("backlog", "step", "cpu"):
        assert f"| burst_1000 | {policy} |" in out
