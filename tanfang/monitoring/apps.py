from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "tanfang.monitoring"
    label = "monitoring"
    verbose_name = "Monitoring"
