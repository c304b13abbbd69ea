"""Scale-in protection of busy EC2 workers, against moto's Auto Scaling (in-process)."""

from tests.ops.test_scaling_providers import group_of


def test_a_busy_worker_protects_its_instance_from_scale_in_and_lifts_it_when_idle(asg, monkeypatch, settings, tmp_path):
    from ops.worker import protection

    name, autoscaling = asg
    instance = group_of(autoscaling, name)["Instances"][0]["InstanceId"]
    settings.ASG_NAME = name
    settings.EC2_INSTANCE_ID = instance
    settings.ACTIVE_TASKS_FILE = tmp_path / "active"
    monkeypatch.setattr(protection, "_autoscaling", lambda: autoscaling)
    protection.instance_id.cache_clear()

    def protected():
        (i,) = autoscaling.describe_auto_scaling_instances(InstanceIds=[instance])["AutoScalingInstances"]
        return i["ProtectedFromScaleIn"]

    protection._task_started()
    assert protected()
    protection._task_started()  # a second task in another pool process
    protection._task_finished()
    assert protected()  # one task still running
    protection._task_finished()
    assert not protected()
    protection.instance_id.cache_clear()


def test_without_a_group_protection_does_nothing(settings, tmp_path):
    from ops.worker import protection

    settings.ASG_NAME = ""
    settings.ACTIVE_TASKS_FILE = tmp_path / "active"
    protection._task_started()
    assert not (tmp_path / "active").exists()
