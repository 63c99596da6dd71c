"""The configured channel backends by name, one instance of each per process.

``channel_for(name)`` is None for a channel that is not configured: SMS without
``SMS_ENDPOINT``, WeCom without ``WECOM_ENABLED`` (or without ``WECOM_URL``), e-mail without
``SMTP_HOST``. The inbox is always there. ``channels_reset()`` forgets the instances (tests
that change settings call it).
"""

from __future__ import annotations

import threading

from django.conf import settings

from tanfang.notifications.channels.base import ChannelBackend

_lock = threading.Lock()
_cache: dict[str, ChannelBackend | None] = {}


def _build(name: str) -> ChannelBackend | None:
    if name == "sms":
        if not settings.SMS_ENDPOINT:
            return None
        from tanfang.notifications.channels.sms_aliyun import AliyunSms

        return AliyunSms(
            endpoint=settings.SMS_ENDPOINT,
            protocol=settings.SMS_PROTOCOL,
            access_key_id=settings.SMS_ACCESS_KEY_ID,
            access_key_secret=settings.SMS_ACCESS_KEY_SECRET,
            sign_name=settings.SMS_SIGN_NAME,
            rate=settings.SMS_RATE,
        )
    if name == "wecom":
        if not (settings.WECOM_ENABLED and settings.WECOM_URL):
            return None
        from tanfang.notifications.channels.wecom import WeComRobot

        return WeComRobot(url=settings.WECOM_URL)
    if name == "email":
        if not settings.SMTP_HOST:
            return None
        from tanfang.notifications.channels.email import SmtpEmail

        return SmtpEmail(
            host=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            sender=settings.SMTP_FROM,
            user=settings.SMTP_USER,
            password=settings.SMTP_PASSWORD,
            starttls=settings.SMTP_STARTTLS,
        )
    if name == "inbox":
        from tanfang.notifications.channels.inbox import Inbox

        return Inbox()
    return None


def channel_for(name: str) -> ChannelBackend | None:
    """The backend of channel ``name`` ("sms", "wecom", "email", "inbox"), None if not set up."""
    with _lock:
        if name not in _cache:
            _cache[name] = _build(name)
        return _cache[name]


def channels_reset() -> None:
    with _lock:
        _cache.clear()
