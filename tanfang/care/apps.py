from django.apps import AppConfig


class CareConfig(AppConfig):
    name = "tanfang.care"
    label = "care"
    verbose_name = "Care actions"
