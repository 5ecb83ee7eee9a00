"""E-mail over SMTP: plain text and HTML, STARTTLS and login when the channel asks for them."""

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from rampup.adapters.egress import Egress, GuardedSMTP
from rampup.core.notifications import Channel, Notification
from rampup.errors import Unavailable

__all__ = ["EmailNotifier", "email_message"]


def email_message(channel: Channel, n: Notification) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = n.title
    message["From"] = channel.config["from"]
    message["To"] = ", ".join(channel.config["to"])
    message["Date"] = format_datetime(n.at)
    # The same id on every retry: receivers (and their mail servers) can drop duplicates.
    message["Message-ID"] = make_msgid(idstring=n.id, domain="rampup")
    message["X-Rampup-Notification"] = n.id
    lines = [n.text, "", *(f"{k}: {v}" for k, v in n.fields)]
    message.set_content("\n".join(lines))
    body = n.html or "<p>{}</p><table>{}</table>".format(
        html.escape(n.text),
        "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in n.fields
        ),
    )
    message.add_alternative(body, subtype="html")
    return message


class EmailNotifier:
    def __init__(self, egress: Egress, timeout_s: float = 20.0) -> None:
        self._egress = egress
        self._timeout = timeout_s

    def send(self, channel: Channel, n: Notification) -> None:
        c = channel.config
        try:
            with GuardedSMTP(self._egress, c["host"], c["port"], self._timeout) as smtp:
                if c.get("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                if c.get("username"):
                    smtp.login(c["username"], c.get("password") or "")
                smtp.send_message(email_message(channel, n))
        except (OSError, smtplib.SMTPException) as exc:
            raise Unavailable(f"SMTP {c['host']}:{c['port']}: {type(exc).__name__}: {exc}") from exc
