from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "tanfang.audit"
    label = "audit"
