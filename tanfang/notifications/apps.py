from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "tanfang.notifications"
    label = "notifications"
    verbose_name = "Notifications"
