"""The demo's message providers: the local sinks, in-process, for the channels not configured.

``tanfang demo`` on a laptop has no SMS provider, SMTP server or WeCom: it starts the sinks
of ``tanfang.notifications.sinks`` on free loopback ports and points the channels at them,
for this process (where ``tanfang serve``'s worker threads run the outbox) through the
settings, and for child processes (gunicorn) through the environment. A channel that is
configured (``SMS_ENDPOINT``, ``SMTP_HOST``, ``WECOM_ENABLED``) is left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from django.conf import settings

from tanfang.notifications.channels.registry import channels_reset
from tanfang.notifications.sinks.sms_server import DEMO_ACCESS_KEY_ID, DEMO_SECRET, SmsSink
from tanfang.notifications.sinks.smtp_server import SmtpSink
from tanfang.notifications.sinks.wecom_server import WeComSink

HOST = "127.0.0.1"


@dataclass
class DemoSinks:
    sms: SmsSink | None = None
    wecom: WeComSink | None = None
    smtp: SmtpSink | None = None
    lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        for sink in (self.sms, self.wecom, self.smtp):
            if sink is not None:
                sink.stop()


def _set(values: dict[str, object]) -> None:
    """Override settings in this process and the ``TANFANG_*`` environment for children."""
    for name, value in values.items():
        setattr(settings, name, value)
        os.environ[f"TANFANG_{name}"] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )


def demo_sinks_start(host: str = HOST) -> DemoSinks:
    """Start a sink for each message channel that is not configured and point the channel
    at it; ``lines`` says where to look at what each received."""
    started = DemoSinks()
    if not settings.SMS_ENDPOINT:
        key_id = settings.SMS_ACCESS_KEY_ID or DEMO_ACCESS_KEY_ID
        secret = settings.SMS_ACCESS_KEY_SECRET or DEMO_SECRET
        started.sms = SmsSink.start(host, 0, access_key_id=key_id, secret=secret)
        _set(
            {
                "SMS_ENDPOINT": started.sms.endpoint,
                "SMS_PROTOCOL": "http",
                "SMS_ACCESS_KEY_ID": key_id,
                "SMS_ACCESS_KEY_SECRET": secret,
            }
        )
        started.lines.append(f"SMS sent to families: {started.sms.url}/_sink/messages")
    if not settings.WECOM_ENABLED:
        # No key list: the sink accepts any robot key, so a group added in the admin
        # works too (the demo's own group has DEMO_WECOM_KEY).
        started.wecom = WeComSink.start(host, 0)
        _set({"WECOM_URL": started.wecom.url, "WECOM_ENABLED": True})
        started.lines.append(
            f"WeCom group posts: http://{host}:{started.wecom.port}/_sink/messages"
        )
    if not settings.SMTP_HOST:
        started.smtp = SmtpSink.start(host, 0)
        _set(
            {
                "SMTP_HOST": started.smtp.host,
                "SMTP_PORT": started.smtp.port,
                "SMTP_USER": "",
                "SMTP_PASSWORD": "",
                "SMTP_STARTTLS": False,
            }
        )
        started.lines.append(
            f"E-mail caught by the SMTP sink: smtp://{started.smtp.host}:{started.smtp.port}"
            " (kept in memory, no web page)"
        )
    channels_reset()
    return started
