from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "tanfang.api"
    label = "api"
