from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "tanfang.imports"
    label = "imports"
