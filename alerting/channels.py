"""Notification channels: one message, rendered for each channel's documented format, and sent.

- ``webhook``: JSON POST; ``X-SafeCity-Signature: sha256=<hex>`` is the HMAC-SHA256 of the body
  with the receiver's secret; ``X-SafeCity-Delivery`` is the notification's unique key (a receiver
  can drop a second copy after a crash between sending and recording it).
- ``dingtalk``: custom group robot, markdown message; with a secret the URL is signed
  (``timestamp`` in ms and ``sign`` = base64 HMAC-SHA256 of ``"{timestamp}\\n{secret}"``).
- ``wecom``: WeCom (企业微信) group robot, markdown message.
- ``feishu``: Feishu (飞书) custom bot, text message; with a secret, ``timestamp`` (s) and ``sign``
  (base64 of the HMAC-SHA256 keyed with ``"{timestamp}\\n{secret}"`` over an empty message) in the body.
- ``email``: SMTP, plain text.
- ``mqtt``: ``safecity/v1/notifications/<receiver>`` (QoS 1), the message as JSON.

Rendering and signing are pure (tested directly); ``send`` does the I/O and raises
``DeliveryError`` for anything that is not a confirmed delivery.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
import time
import urllib.parse
from email.message import EmailMessage
from typing import Any

import aiohttp

from alerting.lifecycle import AlertRecord, iso
from alerting.routing import Notification
from models.settings import AlertSettings

MQTT_NOTIFICATIONS = "safecity/v1/notifications/{receiver}"
REASON_TEXT = {"new": "NEW", "reminder": "REMINDER (not acknowledged)", "escalation": "ESCALATION (not acknowledged)",
               "cleared": "CLEARED", "resolved": "CLOSED", "group": "BURST"}


class DeliveryError(RuntimeError):
    pass


def _alert_summary(r: AlertRecord) -> dict[str, Any]:
    return {"alert_id": r.alert_id, "type": r.type, "severity": r.severity.value, "status": r.status.value,
            "state": "firing" if r.open else "cleared",
            "device_id": r.device_id, "district": r.place.district, "site": r.site, "grid": r.place.grid,
            "since": iso(r.since), "first_seen": iso(r.first_seen), "last_seen": iso(r.last_seen),
            "count": r.count, "summary": r.summary, "details": r.details,
            "acknowledged_by": r.acknowledged_by, "assignee": r.assignee, "closed_by": r.closed_by}


def message_record(r: AlertRecord) -> bytes:
    """An alert's state as published on MQTT: the summary fields plus the steps (who, what, when)."""
    body = _alert_summary(r) | {"at": iso(r.steps[-1].at) if r.steps else iso(r.first_seen),
                                "version": r.version, "closed_at": iso(r.closed_at) if r.closed_at else None,
                                "steps": [{"change": s.change.value, "by": s.by, "at": iso(s.at),
                                           **({"assignee": s.assignee} if s.assignee else {})} for s in r.steps]}
    return json.dumps(body, ensure_ascii=False).encode()


def message(n: Notification) -> dict[str, Any]:
    """The channel-independent message of a notification (what a webhook receives)."""
    return {"key": n.key, "reason": n.reason.value, "receiver": n.receiver, "at": iso(n.at),
            "alerts": [_alert_summary(r) for r in n.records],
            "note": "a lead for a person to verify, never an instruction to act"}


def title(msg: dict) -> str:
    first = msg["alerts"][0]
    more = f" (+{len(msg['alerts']) - 1} more)" if len(msg["alerts"]) > 1 else ""
    return f"[{REASON_TEXT[msg['reason']]}] {first['severity'].upper()} {first['type']} at {first['device_id']}{more}"


def text(msg: dict) -> str:
    lines = [title(msg), ""]
    for a in msg["alerts"]:
        where = ", ".join(x for x in (a["district"], a["site"], a["grid"]) if x)
        lines.append(f"- {a['alert_id']}: {a['summary']}")
        lines.append(f"  {a['status']}, since {a['since']}, seen {a['count']}x" + (f", {where}" if where else ""))
        if a["acknowledged_by"]:
            lines.append(f"  acknowledged by {a['acknowledged_by']}")
    lines += ["", msg["note"]]
    return "\n".join(lines)


def sign_body(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def dingtalk_url(url: str, secret: str, now_ms: int) -> str:
    if not secret:
        return url
    digest = hmac.new(secret.encode(), f"{now_ms}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={now_ms}&sign={sign}"


def feishu_sign(secret: str, timestamp_s: int) -> str:
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def robot_body(kind: str, msg: dict, secret: str = "", now_s: int | None = None) -> dict:
    if kind == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": title(msg)[:60], "text": text(msg)}}
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": text(msg)[:4000]}}
    if kind == "feishu":
        body: dict = {"msg_type": "text", "content": {"text": text(msg)}}
        if secret:
            ts = int(now_s if now_s is not None else time.time())
            body = {"timestamp": str(ts), "sign": feishu_sign(secret, ts)} | body
        return body
    raise ValueError(kind)


def robot_ok(kind: str, reply: Any) -> bool:
    """The robots answer HTTP 200 with an error code in the body: 0 is success."""
    if not isinstance(reply, dict):
        return False
    if kind == "feishu":
        return reply.get("code", reply.get("StatusCode")) == 0
    return reply.get("errcode") == 0


class Sender:
    """Sends one delivery; holds the HTTP session, the SMTP settings and the MQTT client."""

    def __init__(self, settings: AlertSettings, mqtt_publish=None) -> None:
        self.settings = settings
        self.mqtt_publish = mqtt_publish  # async (topic, payload) -> None
        self.http: aiohttp.ClientSession | None = None

    async def _session(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.send_timeout_s))
        return self.http

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def send(self, channel: str, target: str, secret: str, msg: dict) -> None:
        try:
            if channel == "webhook":
                await self._webhook(target, secret, msg)
            elif channel in ("dingtalk", "wecom", "feishu"):
                await self._robot(channel, target, secret, msg)
            elif channel == "email":
                await asyncio.wait_for(asyncio.to_thread(self._email, target, msg), self.settings.send_timeout_s)
            elif channel == "mqtt":
                if self.mqtt_publish is None:
                    raise DeliveryError("no MQTT connection")
                await self.mqtt_publish(MQTT_NOTIFICATIONS.format(receiver=msg["receiver"]),
                                        json.dumps(msg).encode())
            else:
                raise DeliveryError(f"unknown channel {channel}")
        except DeliveryError:
            raise
        except (aiohttp.ClientError, OSError, smtplib.SMTPException, asyncio.TimeoutError, ValueError) as exc:
            raise DeliveryError(f"{type(exc).__name__}: {str(exc)[:200]}") from None

    async def _webhook(self, url: str, secret: str, msg: dict) -> None:
        body = json.dumps(msg, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json", "X-SafeCity-Delivery": msg["key"]}
        if secret:
            headers["X-SafeCity-Signature"] = sign_body(secret, body)
        http = await self._session()
        async with http.post(url, data=body, headers=headers) as resp:
            if resp.status >= 300:
                raise DeliveryError(f"HTTP {resp.status}")

    async def _robot(self, kind: str, url: str, secret: str, msg: dict) -> None:
        now = time.time()
        if kind == "dingtalk":
            url = dingtalk_url(url, secret, int(now * 1000))
        http = await self._session()
        async with http.post(url, json=robot_body(kind, msg, secret, int(now))) as resp:
            if resp.status >= 300:
                raise DeliveryError(f"HTTP {resp.status}")
            reply = await resp.json(content_type=None)
        if not robot_ok(kind, reply):
            raise DeliveryError(f"{kind} refused: {str(reply)[:200]}")

    def _email(self, to: str, msg: dict) -> None:
        s = self.settings
        mail = EmailMessage()
        mail["From"], mail["To"], mail["Subject"] = s.smtp_from, to, title(msg)
        mail["X-SafeCity-Delivery"] = msg["key"]
        mail.set_content(text(msg))
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.send_timeout_s) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_username:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value() if s.smtp_password else "")
            smtp.send_message(mail)
