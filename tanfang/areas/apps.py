from django.apps import AppConfig


class AreasConfig(AppConfig):
    name = "tanfang.areas"
    label = "areas"
