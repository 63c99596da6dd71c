from django.apps import AppConfig


class EmergenciesConfig(AppConfig):
    name = "tanfang.emergencies"
    label = "emergencies"
    verbose_name = "Emergencies"
