"""The broker's users and access rules, built from the device registry (Mosquitto 2's password and ACL files).

    safecity devices credentials --out deploy/secrets/mosquitto

Every device is its own broker user, named by its registry id. The ACL this writes lets a device
publish only the messages of its own kind under its own id (a gas sensor: ``gas/<id>/reading`` and
``gas/<id>/status``; never a registration, never another sensor's topic), and read nothing. No device
may publish on ``alerts/`` or ``system/``. The pipeline's services have their own users and rules
(``SERVICES``). Names starting with ``safecity-`` are reserved for services: a registry id like that is
refused, so no device can be given a service's rights.

Client ids are bound to user names by the broker (``use_username_as_clientid`` on the device listener,
``deploy/mosquitto/mosquitto.conf``): a device that connects with another's client id, or with the
ingest bridge's, gets its own user name as client id and disconnects nobody.

Passwords are hashed as ``mosquitto_passwd`` does (PBKDF2-SHA512, ``$7$``). Existing users keep their
hashes; a new device, a ``--rotate``d one, or a service without a password in the environment gets a
random password, written once to an ``issued-<time>.csv`` (mode 0600) for provisioning and kept nowhere
else. Devices no longer in the registry lose their user. Service passwords come from the same
environment variables the compose file passes to the services (``SERVICE_PASSWORD_ENV``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from models import topics
from models.registry import DeviceEntry
from models.topics import ALLOWED, DeviceKind

PBKDF2_ITERATIONS = 101  # mosquitto_passwd 2.0's default
RESERVED_PREFIX = "safecity-"

#: The pipeline's own broker users and what each may do (Mosquitto ACL ``topic`` lines).
SERVICES: dict[str, tuple[str, ...]] = {
    # ingest reads every device namespace (a topic of any shape is judged, never unseen) and
    # publishes its counters
    "safecity-ingest": (*(f"read {f}" for f in topics.INGEST_SUBSCRIPTIONS),
                        f"write {topics.PREFIX}/system/ingest/stats"),
    # the alert service publishes alert state and notifications; it never reads MQTT back
    "safecity-alerter": (f"write {topics.PREFIX}/alerts/#", f"write {topics.PREFIX}/notifications/#"),
    # the operator console: hears which alert changed (and reads the record from the alert API)
    "safecity-console": (f"read {topics.PREFIX}/alerts/#",),
    # wall displays and command-center clients
    "safecity-display": (f"read {topics.PREFIX}/alerts/#", f"read {topics.PREFIX}/notifications/#",
                         f"read {topics.PREFIX}/system/#"),
}
SERVICE_PASSWORD_ENV = {"safecity-ingest": "MQTT_INGEST_PASSWORD", "safecity-alerter": "MQTT_ALERTER_PASSWORD",
                        "safecity-console": "MQTT_CONSOLE_PASSWORD", "safecity-display": "MQTT_DISPLAY_PASSWORD"}


class CredentialsError(ValueError):
    pass


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = PBKDF2_ITERATIONS) -> str:
    """``$7$<iterations>$<salt>$<hash>``: PBKDF2-SHA512, 12-byte salt, 64-byte hash (Mosquitto 2)."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    return f"$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def verify(password: str, hashed: str) -> bool:
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        again = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), 64)
        return hmac.compare_digest(again, base64.b64decode(digest))
    except ValueError:
        return False


def parse_passwd(text: str) -> dict[str, str]:
    """User name -> hash, from a Mosquitto password file (blank lines and comments skipped)."""
    users = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed.startswith("$"):
            raise CredentialsError(f"password file line {n} is not user:$hash")
        users[user] = hashed
    return users


def format_passwd(users: Mapping[str, str]) -> str:
    return "".join(f"{user}:{hashed}\n" for user, hashed in sorted(users.items()))


def check_ids(entries: Iterable[DeviceEntry]) -> None:
    bad = sorted(e.id for e in entries if e.id.startswith(RESERVED_PREFIX) or e.id in SERVICES)
    if bad:
        raise CredentialsError(f"device id(s) {bad} use the reserved prefix {RESERVED_PREFIX!r} of the services")


def acl(entries: Iterable[DeviceEntry], source: str = "the registry") -> str:
    """The broker's ACL: services' rules, then one user per device with its own kind's topics only."""
    entries = sorted(entries, key=lambda e: e.id)
    check_ids(entries)
    lines = [f"# Written by `safecity devices credentials` from {source}; do not edit: run it again after",
             "# registry changes, then reload the broker (SIGHUP). Anything not granted here is refused.", ""]
    for user, rules in SERVICES.items():
        lines += [f"user {user}", *(f"topic {rule}" for rule in rules), ""]
    lines.append("# devices: each writes its own kind's messages under its own id and reads nothing")
    for entry in entries:
        kind = DeviceKind(entry.kind)
        lines.append(f"user {entry.id}")
        lines += [f"topic write {topics.device_topic(kind, entry.id, message)}"
                  for message in sorted(ALLOWED[kind], key=lambda m: m.value)]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Credentials:
    users: dict[str, str]  # user -> hash: the new password file
    issued: dict[str, str]  # user -> password: new or rotated, to hand out once
    revoked: list[str]  # users removed (no longer in the registry)


def credentials(entries: Iterable[DeviceEntry], existing: Mapping[str, str], *,
                service_passwords: Mapping[str, str] = {}, rotate: Iterable[str] = (),
                new_password: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> Credentials:
    """The password file for ``entries`` and the services, keeping every hash that still stands."""
    entries = list(entries)
    check_ids(entries)
    rotate = set(rotate)
    known = {e.id for e in entries} | set(SERVICES)
    unknown = sorted(rotate - known)
    if unknown:
        raise CredentialsError(f"cannot rotate {unknown}: not in the registry nor a service")
    users, issued = {}, {}
    for user in sorted(known):
        given = service_passwords.get(user)
        if given is not None:  # a service whose password the environment sets
            kept = existing.get(user)
            users[user] = kept if kept is not None and user not in rotate and verify(given, kept) else hash_password(given)
        elif user in existing and user not in rotate:
            users[user] = existing[user]
        else:
            issued[user] = new_password()
            users[user] = hash_password(issued[user])
    return Credentials(users, issued, sorted(set(existing) - known))
