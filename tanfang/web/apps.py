from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "tanfang.web"
    label = "web"
