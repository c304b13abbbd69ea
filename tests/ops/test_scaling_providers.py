"""The providers and the hook against fake AWS (mock_aws) and real local processes."""

import os

import pytest

from ops.scaling.providers import AutoScalingGroupProvider


def group_of(autoscaling, name):
    return autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name])["AutoScalingGroups"][0]


def test_the_asg_provider_reads_the_group_and_sets_desired_capacity_within_its_bounds(asg):
    name, autoscaling = asg
    provider = AutoScalingGroupProvider(name, autoscaling)
    assert provider.state().capacity == 1
    provider.set_desired(3)
    assert group_of(autoscaling, name)["DesiredCapacity"] == 3
    assert provider.state().capacity == 3
    provider.set_desired(50)  # above the group's own max
    assert provider.state().capacity == 5
    provider.set_desired(0)  # below the group's own min
    assert group_of(autoscaling, name)["DesiredCapacity"] == 1


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_the_local_provider_starts_finds_and_warm_stops_real_workers(tmp_path):
    """Real processes standing in for celery workers: started, adopted after a 'restart', stopped with SIGTERM."""
    import sys
    import time

    from ops.scaling.providers import LocalProvider

    script = tmp_path / "celery_stub.py"
    # A stand-in named like a worker: becomes ready, then waits for SIGTERM and
    # exits only after 'finishing its task' (a short sleep), like a warm shutdown.
    script.write_text(
        "import os, signal, sys, time, pathlib\n"
        "pathlib.Path(os.environ['IMAGESHARE_WORKER_READY_FILE']).touch()\n"
        "def bye(*a):\n    time.sleep(0.3); sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "while True: time.sleep(0.1)\n"
    )
    provider = LocalProvider(tmp_path / "pool", lambda name: [sys.executable, str(script), "celery"], {**os.environ}, 2)
    provider.set_desired(2)
    deadline = time.monotonic() + 10
    while provider.state().running < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert provider.state().running == 2

    # A new hook process: same files, same view of the pool.
    again = LocalProvider(tmp_path / "pool", lambda name: [sys.executable, str(script), "celery"], {**os.environ}, 2)
    assert again.state().running == 2 and again.state().starting == 0

    again.set_desired(1)
    st = again.state()
    assert st.running == 1 and st.stopping == 1  # told to go, still finishing
    deadline = time.monotonic() + 10
    while again.state().stopping and time.monotonic() < deadline:
        time.sleep(0.1)
    assert again.state().stopping == 0 and again.state().running == 1
    again.stop_all(timeout=5)
    assert again.state().capacity == 0


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_the_local_provider_does_not_adopt_a_process_that_reused_a_workers_pid(tmp_path):
    """A pid file left by a worker that died names another live process now: that one is not a worker."""
    import subprocess
    import sys

    from ops.scaling.providers import LocalProvider

    pool = tmp_path / "pool"
    pool.mkdir()
    # A live process whose command line even says 'celery', but not the one
    # the pid file recorded (its start time differs).
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "celery"])
    try:
        (pool / "worker1.pid").write_text(f"{other.pid} 1")
        (pool / "worker1.ready").touch()
        provider = LocalProvider(pool, lambda name: ["true"], {}, 2)
        assert provider.state().capacity == 0
        assert not (pool / "worker1.pid").exists()  # its files are cleaned up
        provider.stop_all(timeout=1)
        assert other.poll() is None  # and it is never signalled
    finally:
        other.kill()
        other.wait()
