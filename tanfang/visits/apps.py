from django.apps import AppConfig


class VisitsConfig(AppConfig):
    name = "tanfang.visits"
    label = "visits"
    verbose_name = "Visits"
