"""E-mail over SMTP (``smtplib``), one connection per batch.

Each message is a UTF-8 plain-text mail from ``SMTP_FROM`` with the subject of
``Outgoing.subject`` or else the body's first line, and a ``Message-ID`` derived from the
idempotency key (``<sha256(key)[:32]@tanfang>``), so a resend after a crash carries the same
id and a mail program that de-duplicates by it shows it once.

Outcome per recipient, from the server's reply: accepted SENT; a 4xx (mailbox busy, greylisted,
try later) RETRY; a 5xx (no such mailbox, refused) FAILED. Losing the connection or failing to
open it: RETRY for the messages not yet handed over. ``STARTTLS`` and ``login`` when
``SMTP_STARTTLS`` / ``SMTP_USER`` are set.

SMTP cannot be asked afterwards whether a message was accepted, so ``lookup`` answers None
and an in-doubt mail is sent again (with the same ``Message-ID``).
"""

from __future__ import annotations

import hashlib
import smtplib
from email.message import EmailMessage
from email.utils import formatdate

from tanfang.notifications.channels.base import Outcome, Outgoing, SendResult

TIMEOUT_S = 10.0
SUBJECT_CHARS = 60


def message_id(key: str) -> str:
    return f"<{hashlib.sha256(key.encode('utf-8')).hexdigest()[:32]}@tanfang>"


def subject_of(message: Outgoing) -> str:
    if message.subject:
        return message.subject
    first = message.body.strip().splitlines()[0] if message.body.strip() else ""
    return first[:SUBJECT_CHARS]


def _outcome(code: int) -> Outcome:
    return Outcome.RETRY if 400 <= code < 500 else Outcome.FAILED


class SmtpEmail:
    """The e-mail channel (``ChannelBackend``)."""

    name = "email"
    max_batch = 50
    rate_per_second = 0.0

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        user: str = "",
        password: str = "",
        starttls: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.user = user
        self.password = password
        self.starttls = starttls

    def compose(self, message: Outgoing) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = message.address
        mail["Subject"] = subject_of(message)
        mail["Message-ID"] = message_id(message.key)
        mail["Date"] = formatdate(localtime=False, usegmt=True)
        if message.urgent:
            mail["Importance"] = "high"
        mail.set_content(message.body, charset="utf-8")
        return mail

    def _connect(self) -> smtplib.SMTP:
        connection = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT_S)
        try:
            if self.starttls:
                connection.starttls()
            if self.user:
                connection.login(self.user, self.password)
        except BaseException:
            connection.close()
            raise
        return connection

    def send(self, batch: list[Outgoing], *, batch_key: str) -> list[SendResult]:
        results: list[SendResult] = []
        try:
            connection = self._connect()
        except smtplib.SMTPAuthenticationError as exc:
            return [
                SendResult(m.key, Outcome.FAILED, error=f"login: {exc.smtp_code}") for m in batch
            ]
        except (OSError, smtplib.SMTPException) as exc:
            error = f"connect: {type(exc).__name__}: {exc}"[:300]
            return [SendResult(m.key, Outcome.RETRY, error=error) for m in batch]
        try:
            for index, message in enumerate(batch):
                try:
                    results.append(self._send_one(connection, message))
                except (OSError, smtplib.SMTPServerDisconnected) as exc:
                    error = f"{type(exc).__name__}: {exc}"[:300]
                    results += [
                        SendResult(m.key, Outcome.RETRY, error=error) for m in batch[index:]
                    ]
                    return results
        finally:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()
        return results

    def _send_one(self, connection: smtplib.SMTP, message: Outgoing) -> SendResult:
        if "@" not in message.address:
            return SendResult(message.key, Outcome.FAILED, error="not an e-mail address")
        try:
            refused = connection.send_message(
                self.compose(message), from_addr=self.sender, to_addrs=[message.address]
            )
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return SendResult(message.key, _outcome(code), error=f"{code} {text!r}"[:300])
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            return SendResult(message.key, _outcome(exc.smtp_code), error=f"{exc.smtp_code}"[:300])
        except smtplib.SMTPNotSupportedError as exc:
            return SendResult(message.key, Outcome.FAILED, error=str(exc)[:300])
        if refused:
            code, text = next(iter(refused.values()))
            return SendResult(message.key, _outcome(code), error=f"{code} {text!r}"[:300])
        return SendResult(message.key, Outcome.SENT, provider_id=message_id(message.key))

    def lookup(self, batch: list[Outgoing], *, batch_key: str) -> dict[str, bool | None]:
        return dict.fromkeys((m.key for m in batch), None)
