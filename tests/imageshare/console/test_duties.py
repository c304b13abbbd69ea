"""Periodic duties: one holder of the lease at a time, and one duty's failure never stops another."""

import pytest

from imageshare.console.duties import Duty, hold_lease, release_lease, run_duties

pytestmark = pytest.mark.django_db


def test_only_one_process_holds_the_duties_lease_until_it_expires_or_is_released():
    assert hold_lease("duties", "web-a", ttl_seconds=60)
    assert not hold_lease("duties", "web-b", ttl_seconds=60)  # a second web node stands by
    assert hold_lease("duties", "web-a", ttl_seconds=60)  # the holder renews
    release_lease("duties", "web-a")
    assert hold_lease("duties", "web-b", ttl_seconds=60)


def test_a_dead_holders_lease_is_taken_over_once_expired():
    assert hold_lease("duties", "web-a", ttl_seconds=-1)  # already expired: web-a died
    assert hold_lease("duties", "web-b", ttl_seconds=60)
    assert not hold_lease("duties", "web-a", ttl_seconds=60)


def test_a_failing_duty_does_not_stop_the_others():
    ran = []

    def broken():
        raise RuntimeError("SQS is down")

    duties = [Duty("broken", lambda: 30, broken), Duty("scaling", lambda: 10, lambda: ran.append("scaling"))]
    run_duties(duties, stopping=False, once=True)
    assert ran == ["scaling"]


def test_a_standby_process_runs_no_duty():
    assert hold_lease("duties", "another-web-node", ttl_seconds=60)
    ran = []
    run_duties([Duty("scaling", lambda: 10, lambda: ran.append(1))], stopping=False, once=True)
    assert ran == []
