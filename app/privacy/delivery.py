"""Sending one-time codes: by SMTP when `PGW_SMTP_HOST` is set; in development without it, to
files under `PGW_DATA_DIR/privacy-outbox/` (`email.jsonl`, `sms.jsonl`) that a developer or a
test reads. Phone codes go to an SMS gateway's webhook (`PGW_SMS_WEBHOOK_URL`), through the
webhooks domain's checked delivery; without one, outside development, the centre says they are
not configured. Sending runs after the response, outside any database transaction; a failure is
logged without the address or the code."""

from __future__ import annotations

import json
import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from pathlib import Path

from app.clock import isoformat, utcnow
from app.config import Settings
from app.privacy.service import Outgoing
from app.webhooks import service as webhooks

logger = logging.getLogger("pgw.privacy")
_SINK_LOCK = threading.Lock()

SUBJECTS = {"en": "Your verification code", "zh": "您的验证码"}
BODIES = {
    "en": "Your code for the {name} is {code}. It expires in {minutes} minutes and works "
          "once. If you did not ask for it, ignore this message.",
    "zh": "您在{name}的验证码为 {code}，{minutes} 分钟内有效，仅可使用一次。如非本人操作，请忽略。",
}


def configured(settings: Settings, channel: str) -> bool:
    """Whether codes can be sent on this channel here."""
    if channel == "email":
        return bool(settings.smtp_host) or settings.is_dev
    return bool(settings.sms_webhook_url) or settings.is_dev


def sink_dir(settings: Settings) -> Path:
    return settings.data_dir / "privacy-outbox"


def text(settings: Settings, outgoing: Outgoing, language: str) -> tuple[str, str]:
    body = BODIES[language].format(name=settings.privacy_name, code=outgoing.code,
                                   minutes=settings.privacy_code_minutes)
    return SUBJECTS[language], body


def send(settings: Settings, outgoing: Outgoing, language: str) -> None:
    """Send the code; never raises (the person asks for another if it does not arrive)."""
    try:
        if outgoing.channel == "email" and settings.smtp_host:
            _smtp(settings, outgoing, language)
        elif outgoing.channel == "phone" and settings.sms_webhook_url:
            _sms_webhook(settings, outgoing, language)
        elif configured(settings, outgoing.channel):
            _to_sink(settings, outgoing, language)
        else:
            logger.error("privacy centre: no sender configured for %s codes", outgoing.channel)
    except (OSError, smtplib.SMTPException, RuntimeError, ValueError) as exc:
        logger.error("privacy centre: sending a %s code failed: %s", outgoing.channel,
                     type(exc).__name__)


def _smtp(settings: Settings, outgoing: Outgoing, language: str) -> None:
    subject, body = text(settings, outgoing, language)
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = outgoing.address
    message["Subject"] = subject
    message.set_content(body)
    assert settings.smtp_host is not None  # noqa: S101 - checked by the caller
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.smtp_timeout_seconds) as smtp:
        if settings.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


def _sms_webhook(settings: Settings, outgoing: Outgoing, language: str) -> None:
    _, body = text(settings, outgoing, language)
    secret = settings.sms_webhook_secret.get_secret_value() if settings.sms_webhook_secret \
        else ""
    assert settings.sms_webhook_url is not None  # noqa: S101 - checked by the caller
    webhooks.post_signed(
        settings.sms_webhook_url, secret=secret,
        body=json.dumps({"to": outgoing.address, "text": body}, ensure_ascii=False).encode(),
        allow_hosts=settings.webhook_allow_hosts,
        require_https=not settings.is_dev, timeout=settings.webhook_timeout_seconds)


def _to_sink(settings: Settings, outgoing: Outgoing, language: str) -> None:
    subject, body = text(settings, outgoing, language)
    folder = sink_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    name = "email.jsonl" if outgoing.channel == "email" else "sms.jsonl"
    line = json.dumps({"at": isoformat(utcnow()), "to": outgoing.address, "subject": subject,
                       "body": body}, ensure_ascii=False)
    with _SINK_LOCK, (folder / name).open("a", encoding="utf-8") as sink:
        sink.write(line + "\n")
