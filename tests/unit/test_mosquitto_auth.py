"""The broker's users and ACL from the registry (deploy/mosquitto_auth.py): pure functions."""

import base64
import shutil
import subprocess

import pytest

from deploy import mosquitto_auth as auth
from models.registry import DeviceEntry
from models.topics import DeviceKind

DEVICES = [DeviceEntry(id="gas-1", kind=DeviceKind.GAS), DeviceEntry(id="cam-1", kind=DeviceKind.CAMERA),
           DeviceEntry(id="hotel-1", kind=DeviceKind.HOTEL)]


def counter():
    n = iter(range(1000))
    return lambda: f"pw{next(n)}"


def acl_rules(text: str) -> dict[str, list[str]]:
    rules, user = {}, None
    for line in text.splitlines():
        if line.startswith("user "):
            user = line.split()[1]
            rules[user] = []
        elif line.startswith("topic "):
            rules[user].append(line[len("topic "):])
        elif line.strip() and not line.startswith("#"):
            raise AssertionError(f"unexpected ACL line {line!r}")
    return rules


def test_the_hash_is_mosquittos_own_format():
    salt = bytes(range(12))
    hashed = auth.hash_password("secret", salt=salt)
    assert hashed.startswith("$7$101$" + base64.b64encode(salt).decode() + "$")
    assert auth.verify("secret", hashed) and not auth.verify("secret!", hashed)
    assert auth.hash_password("secret") != auth.hash_password("secret")  # a fresh salt each time


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="scripts/setup.sh installs mosquitto-clients")
def test_a_hash_from_mosquitto_passwd_verifies(tmp_path):
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(tmp_path / "pw"), "gas-1", "s3cret"], check=True)
    users = auth.parse_passwd((tmp_path / "pw").read_text())
    assert auth.verify("s3cret", users["gas-1"]) and not auth.verify("other", users["gas-1"])


def test_each_device_may_write_only_its_own_kinds_topics_and_read_nothing():
    rules = acl_rules(auth.acl(DEVICES))
    assert rules["gas-1"] == ["write safecity/v1/gas/gas-1/reading", "write safecity/v1/gas/gas-1/status"]
    assert rules["cam-1"] == ["write safecity/v1/camera/cam-1/frame", "write safecity/v1/camera/cam-1/plate-read",
                              "write safecity/v1/camera/cam-1/status"]
    assert rules["hotel-1"] == ["write safecity/v1/hotel/hotel-1/registration", "write safecity/v1/hotel/hotel-1/status"]
    device_rules = [r for d in DEVICES for r in rules[d.id]]
    assert not any(r.startswith("read") or "#" in r or "+" in r for r in device_rules)
    writers_of_alerts = [u for u, rs in rules.items() if any(r.startswith("write safecity/v1/alerts") for r in rs)]
    assert writers_of_alerts == ["safecity-alerter"]


@pytest.mark.parametrize("bad", ["safecity-ingest", "safecity-anything"])
def test_device_ids_may_not_take_a_service_name(bad):
    with pytest.raises(auth.CredentialsError, match="reserved"):
        auth.acl([*DEVICES, DeviceEntry(id=bad, kind=DeviceKind.GAS)])
    with pytest.raises(auth.CredentialsError, match="reserved"):
        auth.credentials([DeviceEntry(id=bad, kind=DeviceKind.GAS)], {})


def test_new_users_get_a_password_once_and_existing_ones_keep_theirs():
    first = auth.credentials(DEVICES, {}, service_passwords={"safecity-ingest": "from-env"}, new_password=counter())
    assert set(first.users) == {"gas-1", "cam-1", "hotel-1", *auth.SERVICES}
    assert set(first.issued) == {"gas-1", "cam-1", "hotel-1", "safecity-alerter", "safecity-console",
                                  "safecity-display"}
    assert auth.verify("from-env", first.users["safecity-ingest"])
    for user, password in first.issued.items():
        assert auth.verify(password, first.users[user])

    more = [*DEVICES[1:], DeviceEntry(id="gas-9", kind=DeviceKind.GAS)]  # gas-1 left the registry, gas-9 joined
    again = auth.credentials(more, first.users, service_passwords={"safecity-ingest": "from-env"},
                             rotate=["cam-1"], new_password=counter())
    assert set(again.issued) == {"gas-9", "cam-1"} and again.revoked == ["gas-1"]
    assert "gas-1" not in again.users
    assert again.users["hotel-1"] == first.users["hotel-1"]  # untouched
    assert again.users["safecity-ingest"] == first.users["safecity-ingest"]  # same password: same hash kept
    assert again.users["cam-1"] != first.users["cam-1"]


def test_a_changed_service_password_replaces_its_hash():
    first = auth.credentials(DEVICES, {}, service_passwords={"safecity-ingest": "old"}, new_password=counter())
    second = auth.credentials(DEVICES, first.users, service_passwords={"safecity-ingest": "new"})
    assert auth.verify("new", second.users["safecity-ingest"]) and "safecity-ingest" not in second.issued


def test_rotating_an_unknown_user_is_refused():
    with pytest.raises(auth.CredentialsError, match="cannot rotate"):
        auth.credentials(DEVICES, {}, rotate=["ghost"])


def test_the_password_file_round_trips():
    users = auth.credentials(DEVICES, {}, new_password=counter()).users
    assert auth.parse_passwd(auth.format_passwd(users)) == users
    with pytest.raises(auth.CredentialsError, match="line 1"):
        auth.parse_passwd("gas-1 plaintext\n")
