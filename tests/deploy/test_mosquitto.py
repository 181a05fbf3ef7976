"""The production broker configuration, run by a real Mosquitto: credentials, the per-device ACL, TLS."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from ingest.mqtt import BrokerAddress, LinkState, Publisher, Subscriber
from tests.support import wait_for
from watchpost.embedded import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "mosquitto"

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto") and shutil.which("mosquitto_passwd") and shutil.which("openssl")),
    reason="needs Mosquitto, mosquitto_passwd and openssl (Debian packages mosquitto, openssl)",
)

PASSWORDS = {"watchpost": "svc-secret", "lotus-gate-n": "gate-secret", "lotus-ebike-1": "unit-secret"}


def _certificates(folder: Path) -> None:
    """A private CA and a broker certificate for 127.0.0.1, as a district would make them."""
    run = lambda *args: subprocess.run(args, cwd=folder, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.crt",
    )


@pytest.fixture(scope="module")
def production_broker(tmp_path_factory):
    """Mosquitto started from deploy/mosquitto/mosquitto.conf and acl, paths moved to a scratch folder."""
    folder = tmp_path_factory.mktemp("mosquitto-prod")
    _certificates(folder)
    passwd = folder / "passwd"
    for i, (user, password) in enumerate(PASSWORDS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    plain, tls = free_port(), free_port()
    conf = (DEPLOY / "mosquitto.conf").read_text(encoding="utf-8")
    conf = conf.replace("/mosquitto/config/certs/", f"{folder}/").replace("/mosquitto/config/passwd", str(passwd))
    conf = conf.replace("/mosquitto/config/acl", str(DEPLOY / "acl")).replace("/mosquitto/data/", f"{folder}/")
    conf = conf.replace("listener 1883", f"listener {plain} 127.0.0.1").replace(
        "listener 8883", f"listener {tls} 127.0.0.1"
    )
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        conf = "user root\n" + conf
    (folder / "mosquitto.conf").write_text(conf, encoding="utf-8")
    proc = subprocess.Popen(
        ["mosquitto", "-c", str(folder / "mosquitto.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", tls), timeout=0.2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.05)
    yield {"plain": plain, "tls": tls, "ca": str(folder / "ca.crt")}
    proc.terminate()
    proc.wait(10)


def _url(broker, user: str, *, password: str | None = None, tls: bool = False) -> str:
    secret = PASSWORDS[user] if password is None else password
    if tls:
        return f"mqtts://{user}:{secret}@127.0.0.1:{broker['tls']}?ca={broker['ca']}"
    return f"mqtt://{user}:{secret}@127.0.0.1:{broker['plain']}"


class _Inbox:
    def __init__(self, broker, filters: list[str]) -> None:
        self.topics: list[str] = []
        self.sub = Subscriber(
            BrokerAddress.parse(_url(broker, "watchpost")),
            client_id=f"svc-{uuid.uuid4().hex[:6]}",
            filters=filters,
            on_message=self._on,
            session_expiry_s=0,
        )

    def _on(self, message) -> None:
        self.topics.append(message.topic)
        self.sub.ack(message)

    def __enter__(self):
        self.sub.start()
        assert self.sub.wait_ready(10), self.sub.detail
        return self

    def __exit__(self, *exc) -> None:
        self.sub.stop()


def test_a_device_publishes_under_its_own_topic_and_is_refused_anothers(production_broker):
    """lotus-gate-n's message under its own id reaches Watchpost; the same under lotus-gate-s's id is dropped."""
    with _Inbox(production_broker, ["watchpost/devices/#"]) as inbox:
        with Publisher(BrokerAddress.parse(_url(production_broker, "lotus-gate-n"))) as gate:
            gate.publish("watchpost/devices/lotus-gate-s/events", b'{"forged": true}').wait_for_publish(5)
            gate.publish("watchpost/devices/lotus-gate-n/events", b'{"kind": "access"}').wait_for_publish(5)
        assert wait_for(lambda: inbox.topics, timeout=5)
        time.sleep(0.5)
    assert inbox.topics == ["watchpost/devices/lotus-gate-n/events"]


def test_a_patrol_terminal_reports_only_for_its_own_unit(production_broker):
    """lotus-ebike-1 may publish its own position, not another unit's, and not as a device."""
    with _Inbox(production_broker, ["watchpost/units/+/position", "watchpost/devices/#"]) as inbox:
        with Publisher(BrokerAddress.parse(_url(production_broker, "lotus-ebike-1"))) as unit:
            body = json.dumps({"lat": 30.27, "lon": 120.15}).encode()
            unit.publish("watchpost/units/lotus-car-1/position", body).wait_for_publish(5)
            unit.publish("watchpost/devices/lotus-gate-n/events", b"{}").wait_for_publish(5)
            unit.publish("watchpost/units/lotus-ebike-1/position", body).wait_for_publish(5)
        assert wait_for(lambda: inbox.topics, timeout=5)
        time.sleep(0.5)
    assert inbox.topics == ["watchpost/units/lotus-ebike-1/position"]


def test_a_wrong_password_is_refused_and_not_retried(production_broker):
    """A wrong password gets CONNACK 'not authorized' and the subscriber stops trying."""
    sub = Subscriber(
        BrokerAddress.parse(_url(production_broker, "watchpost", password="wrong")),
        client_id="svc-wrong",
        filters=["watchpost/#"],
        on_message=lambda m: None,
    )
    sub.start()
    try:
        assert wait_for(lambda: sub.state is LinkState.REFUSED, timeout=10)
        assert "refused" in sub.detail
    finally:
        sub.stop()


def test_the_tls_listener_serves_devices_with_the_districts_certificate(production_broker):
    """Over TLS, trusting the district's CA, a device's message arrives like on the plain listener."""
    with _Inbox(production_broker, ["watchpost/devices/#"]) as inbox:
        with Publisher(BrokerAddress.parse(_url(production_broker, "lotus-gate-n", tls=True))) as gate:
            gate.publish("watchpost/devices/lotus-gate-n/events", b'{"kind": "access"}').wait_for_publish(5)
        assert wait_for(lambda: inbox.topics, timeout=5) == ["watchpost/devices/lotus-gate-n/events"]


def test_a_broker_url_names_its_ca_only_with_tls():
    """mqtts://…?ca= trusts that CA; ca= on plain mqtt:// and unknown parameters are refused with a reason."""
    assert BrokerAddress.parse("mqtts://h:8883?ca=/etc/ca.crt").ca_file == "/etc/ca.crt"
    with pytest.raises(ValueError, match="needs mqtts"):
        BrokerAddress.parse("mqtt://h?ca=/etc/ca.crt")
    with pytest.raises(ValueError, match="unknown parameter"):
        BrokerAddress.parse("mqtts://h?cert=x")
