from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "tanfang.workers"
    label = "workers"
    verbose_name = "Workers"

    def ready(self) -> None:
        from django.conf import settings

        if settings.REDIS_URL:
            # Every process that commits outbox messages (web, MQTT, workers) wakes the
            # workers through Redis; without Redis an in-process worker listens directly.
            from tanfang.notifications.wake import on_outbox_wake
            from tanfang.workers.redis_backend import publish_outbox_wake

            on_outbox_wake(publish_outbox_wake)
