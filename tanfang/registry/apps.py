from django.apps import AppConfig


class RegistryConfig(AppConfig):
    name = "tanfang.registry"
    label = "registry"
