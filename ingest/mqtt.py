"""MQTT transport: the only module that imports paho.

:class:`Subscriber` is an MQTT 5 consumer with a persistent session, QoS 1, manual acks and
shared subscriptions. Its paho callback only wraps the message in a
:class:`~watchpost.model.ReceivedMessage` and hands it on; work happens off the network
thread. :class:`Publisher` sends QoS 1 messages (simulator, benchmarks, tests).
"""

from __future__ import annotations

import logging
import socket
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from watchpost.model import ReceivedMessage

__all__ = ["RECONNECT_S", "BrokerAddress", "LinkState", "Publisher", "RawCounter", "Subscriber", "probe"]

log = logging.getLogger("watchpost.mqtt")

_PUBACK = struct.Struct("!BBH")  # fixed header 0x40, remaining length 2, packet id

# CONNACK reason codes after which retrying with the same credentials is pointless.
_FATAL_CONNACK = {
    "Bad user name or password",
    "Not authorized",
    "Client identifier not valid",
    "Banned",
    "Bad authentication method",
    "Unsupported protocol version",
}


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is: ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://`` for TLS.

    ``mqtts://host:8883?ca=/path/ca.crt`` trusts a private certificate authority instead of
    the system's (a district's own broker certificate).
    """

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """Read a broker URL; raise ValueError with the reason when it is not one."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
        if not parts.hostname:
            raise ValueError(f"broker URL {url!r}: no host")
        tls = parts.scheme in ("mqtts", "ssl")
        query = parse_qs(parts.query)
        unknown = set(query) - {"ca"}
        if unknown:
            raise ValueError(f"broker URL {url!r}: unknown parameter(s) {', '.join(sorted(unknown))}; known: ca")
        ca_file = query["ca"][0] if "ca" in query else None
        if ca_file is not None and not tls:
            raise ValueError(f"broker URL {url!r}: ca= needs mqtts://")
        return cls(
            host=parts.hostname,
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca_file,
        )

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class LinkState(StrEnum):
    """Where the connection to the broker stands."""

    STARTING = "starting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    REFUSED = "refused"  # the broker refused our credentials or identity: not retried
    STOPPED = "stopped"


def _no_delay(_client: paho.Client, _userdata: object, sock: object) -> None:
    """Send small packets at once (no Nagle): a lone alarm must not wait for a delayed ACK (~40 ms)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
    except (OSError, AttributeError):
        pass  # not a TCP socket (a websocket transport): nothing to tune


# Seconds before the first reconnection attempt and at most between attempts (paho backs off between
# them). Workers retry every 2 s at most: Mosquitto 2.0.11 does not restore shared subscriptions after its
# own restart, and what arrives before a worker subscribes again is dropped (README).
RECONNECT_S = (1, 30)
_WORKER_RECONNECT_S = (1, 2)


def _new_client(
    address: BrokerAddress, client_id: str, *, manual_ack: bool, reconnect_s: tuple[int, int] = RECONNECT_S
) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5, manual_ack=manual_ack)
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=address.ca_file, cert_reqs=ssl.CERT_REQUIRED)
    client.reconnect_delay_set(min_delay=reconnect_s[0], max_delay=reconnect_s[1])
    client.on_socket_open = _no_delay
    return client


class Subscriber:
    """Consume topic filters with QoS 1 and acknowledge each message only when told to.

    The broker keeps the session (``clean_start`` false, a session expiry) so messages that
    were delivered but not acknowledged, or published while we were away, come again after
    a reconnect. ``receive_maximum`` bounds how many unacknowledged messages the broker sends
    us at once, which bounds our memory when the database is slow or down.
    """

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str,
        filters: Iterable[str],
        on_message: Callable[[ReceivedMessage], None],
        share_group: str | None = None,
        session_expiry_s: int = 3600,
        receive_maximum: int = 10000,
        keepalive_s: int = 30,
    ) -> None:
        self.address = address
        self.client_id = client_id
        # One share group per filter: rumqttd (the embedded broker) serves only the first
        # filter of a group; for Mosquitto the names are arbitrary labels either way.
        self.filters = [
            (f"$share/{share_group}{'' if i == 0 else f'-{i}'}/{f}" if share_group else f)
            for i, f in enumerate(filters)
        ]
        self._deliver = on_message
        self._session_expiry_s = session_expiry_s
        self._receive_maximum = receive_maximum
        self._keepalive_s = keepalive_s
        self._epoch = 0
        self._lock = threading.Lock()
        self.state = LinkState.STARTING
        self.detail = ""
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._client = _new_client(address, client_id, manual_ack=True, reconnect_s=_WORKER_RECONNECT_S)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # -- lifecycle --

    def start(self) -> Subscriber:
        """Connect in the background; reconnects with backoff until stopped or refused."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._session_expiry_s
        props.ReceiveMaximum = self._receive_maximum
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self._keepalive_s,
            clean_start=False,
            properties=props,
        )
        self._client.loop_start()
        return self

    def stop(self) -> None:
        """Disconnect and stop the network thread. Unacknowledged messages stay with the broker."""
        with self._lock:
            self.state = LinkState.STOPPED
            self._epoch += 1  # any ack still in flight in the caller is now stale
        self._client.disconnect()
        self._client.loop_stop()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Block until connected and subscribed (or refused / timed out)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state is LinkState.REFUSED:
                return False
            if self.subscribed.wait(0.05):
                return True
        return False

    # -- acknowledgement --

    def ack(self, message: ReceivedMessage) -> bool:
        """Acknowledge ``message``; False when its connection is gone (the broker will resend it)."""
        if message.qos == 0:
            return True
        with self._lock:
            if message.epoch != self._epoch or self.state is not LinkState.CONNECTED:
                return False
            rc = self._client.ack(message.mid, message.qos)
        return rc == MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_all(self, messages: Iterable[ReceivedMessage]) -> int:
        """Acknowledge a committed batch in one socket write; return how many acks were sent.

        paho sends each ``ack()`` as its own packet and system call and wakes its network
        thread for each; a batch of 2,000 acks cost about as much as adapting the batch. The
        PUBACKs (4 bytes each, reason "success" implied) are concatenated into one buffer on
        paho's outgoing queue, which paho writes like any packet. Uses paho's private
        ``_packet_queue``; falls back to one ``ack()`` per message if that ever goes away.
        """
        mids = []
        with self._lock:
            if self.state is not LinkState.CONNECTED:
                return 0
            epoch = self._epoch
            for message in messages:
                if message.qos == 1 and message.epoch == epoch:
                    mids.append(message.mid)
            if not mids:
                return 0
            queue_packet = getattr(self._client, "_packet_queue", None)
            if queue_packet is None:  # pragma: no cover - a paho without the private API
                return sum(self._client.ack(mid, 1) == MQTTErrorCode.MQTT_ERR_SUCCESS for mid in mids)
            blob = b"".join(_PUBACK.pack(0x40, 2, mid) for mid in mids)
            rc = queue_packet(0x40, blob, 0, 1)
        return len(mids) if rc == MQTTErrorCode.MQTT_ERR_SUCCESS else 0

    # -- paho callbacks (network thread: keep them short) --

    def _on_connect(
        self, client: paho.Client, _u: object, flags: paho.ConnectFlags, rc: ReasonCode, _p: object
    ) -> None:
        if rc.is_failure:
            reason = str(rc)
            if reason in _FATAL_CONNACK:
                with self._lock:
                    self.state = LinkState.REFUSED
                    self.detail = f"broker {self.address} refused the connection: {reason}"
                log.error(
                    "mqtt connection refused, not retrying: client=%s broker=%s reason=%s",
                    self.client_id,
                    self.address,
                    reason,
                )
                # Stop retrying: a wrong password does not become right by asking again.
                threading.Thread(target=self._give_up, daemon=True).start()
            else:
                self.detail = f"connection refused: {reason}"
                log.warning("mqtt connection refused, will retry: client=%s reason=%s", self.client_id, reason)
            return
        with self._lock:
            self._epoch += 1
            self.state = LinkState.CONNECTED
            self.detail = f"session_present={flags.session_present}"
        self.connected.set()
        log.info(
            "mqtt connected: client=%s broker=%s session_present=%s",
            self.client_id,
            self.address,
            flags.session_present,
        )
        client.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in self.filters])

    def _give_up(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_subscribe(self, _c: paho.Client, _u: object, _mid: int, codes: list[ReasonCode], _p: object) -> None:
        failed = [str(c) for c in codes if c.is_failure]
        if failed:
            self.detail = f"subscription refused: {', '.join(failed)}"
            log.error(
                "mqtt subscription refused: client=%s filters=%s reasons=%s", self.client_id, self.filters, failed
            )
            return
        self.subscribed.set()

    def _on_disconnect(self, _c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        with self._lock:
            self._epoch += 1
            if self.state not in (LinkState.STOPPED, LinkState.REFUSED):
                self.state = LinkState.RECONNECTING
                self.detail = f"disconnected: {rc}"
        self.connected.clear()
        self.subscribed.clear()
        if self.state is LinkState.RECONNECTING:
            log.warning("mqtt disconnected, reconnecting: client=%s reason=%s", self.client_id, rc)

    def _on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        self._deliver(
            ReceivedMessage(
                topic=msg.topic,
                payload=msg.payload,
                received_at=datetime.now(UTC),
                mid=msg.mid,
                qos=msg.qos,
                epoch=self._epoch,
                retain=bool(msg.retain),
                duplicate=bool(msg.dup),
            )
        )


class Publisher:
    """A QoS 1 publisher for the simulator, benchmarks and tests."""

    def __init__(
        self,
        address: BrokerAddress,
        *,
        client_id: str = "",
        max_inflight: int = 0,
        reconnect_s: tuple[int, int] = RECONNECT_S,
    ) -> None:
        self.address = address
        self._client = _new_client(address, client_id, manual_ack=False, reconnect_s=reconnect_s)
        # 0 = no client-side limit: paho rescans every unacknowledged message after each
        # PUBACK when a limit is set, which is quadratic in a burst of thousands.
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        self._refused = ""
        self._client.on_connect = self._on_connect
        self._connected = threading.Event()

    def _on_connect(self, _c: paho.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            self._refused = str(rc)
        else:
            self._connected.set()

    def connect(self, timeout: float = 10.0) -> Publisher:
        """Connect and wait for the broker's answer; raise ConnectionError when refused or silent."""
        self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        while not self._connected.wait(0.05):
            if self._refused or time.monotonic() > deadline:
                self._client.loop_stop()
                raise ConnectionError(f"cannot publish to {self.address}: {self._refused or 'no answer'}")
        return self

    def publish(self, topic: str, payload: bytes, *, qos: int = 1) -> paho.MQTTMessageInfo:
        """Queue one message; the returned info says when the broker has it."""
        return self._client.publish(topic, payload, qos=qos)

    def close(self, timeout: float = 30.0) -> None:
        """Wait until everything queued has been acknowledged by the broker, then disconnect."""
        deadline = time.monotonic() + timeout
        while self._client.want_write() or self._client._out_messages:  # noqa: SLF001 - no public API
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        self._client.disconnect()
        self._client.loop_stop()

    def __enter__(self) -> Publisher:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()


class RawCounter:
    """A bare paho subscriber that does nothing but count (paho acknowledges QoS 1 itself).

    The benchmarks' physical limit: what the broker and paho alone deliver to one client.
    """

    def __init__(self, address: BrokerAddress, *, filters: Iterable[str], expected: int, client_id: str = "") -> None:
        self.expected = expected
        self.count = 0
        self.last_at = 0.0
        self.done = threading.Event()
        self._ready = threading.Event()
        self._filters = list(filters)
        self._client = _new_client(address, client_id, manual_ack=False)
        self._client.on_connect = lambda c, *_: c.subscribe([(f, paho.SubscribeOptions(qos=1)) for f in self._filters])
        self._client.on_subscribe = lambda *_: self._ready.set()
        self._client.on_message = self._on_message
        self._address = address

    def _on_message(self, _c: paho.Client, _u: object, _m: paho.MQTTMessage) -> None:
        self.count += 1
        if self.count == self.expected:
            self.last_at = time.time()
            self.done.set()

    def start(self, timeout: float = 10.0) -> RawCounter:
        """Connect, subscribe, and return once the subscription stands."""
        props = Properties(PacketTypes.CONNECT)
        props.ReceiveMaximum = 65535
        self._client.connect_async(self._address.host, self._address.port, properties=props)
        self._client.loop_start()
        if not self._ready.wait(timeout):
            self.stop()
            raise ConnectionError(f"could not subscribe at {self._address}")
        return self

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()


def probe(address: BrokerAddress, timeout: float = 2.0) -> bool:
    """Whether an MQTT 5 broker answers a CONNECT at ``address``."""
    try:
        Publisher(address, client_id="").connect(timeout=timeout).close(timeout=1)
        return True
    except (ConnectionError, OSError):
        return False
