from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    """The staff console (/ops/): pool, queues, scaling policy and decisions, metrics.

    The label stays "ops", the app's name before it moved here: it names the
    database tables (ops_scalingdecision, ...) and the migration history, so a
    database made before the move needs no migration.
    """

    name = "imageshare.console"
    label = "ops"
    verbose_name = "Console"
    default_auto_field = "django.db.models.BigAutoField"
