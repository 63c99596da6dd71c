from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "tanfang.workers"
    label = "workers"
    verbose_name = "Workers"
