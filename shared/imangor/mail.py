"""Sending e-mail. Locally (EMAIL_BACKEND=log) a message is logged and kept in `sent_emails`
for people and tests to read; in production it goes out over SMTP with STARTTLS."""

from __future__ import annotations

import logging
from email.message import EmailMessage

from sqlalchemy.orm import Session

from imangor.config import get_settings

log = logging.getLogger(__name__)


def send_email(session: Session, to: str, subject: str, body: str) -> None:
    settings = get_settings()
    if settings.email_backend == "log" and not settings.is_local:
        raise RuntimeError("EMAIL_BACKEND=log is for local use only: it would log reset links")
    if settings.email_backend == "log":
        from imangor.models import SentEmail

        session.add(SentEmail(recipient=to, subject=subject, body=body))
        log.info("e-mail to %s: %s", to, subject, extra={"fields": {"email_body": body}})
        return
    import smtplib

    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.email_from, to, subject
    message.set_content(body)
    if not settings.smtp_host:
        raise RuntimeError("EMAIL_BACKEND=smtp needs SMTP_HOST")
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        smtp.starttls()
        if settings.smtp_user and settings.smtp_password:
            smtp.login(settings.smtp_user, settings.smtp_password.get_secret_value())
        smtp.send_message(message)
