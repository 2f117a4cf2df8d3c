"""Publish visits to MQTT (paho-mqtt 2.x), tidy and loss-averse.

Topics under ``<prefix>`` (default ``tinyedge/<device_id>``):

- ``events``: one JSON message per visit event (QoS 1, not retained);
- ``person``: retained ``ON`` / ``OFF``;
- ``availability``: retained ``online``; ``offline`` is the last will and the clean goodbye;
- Home Assistant discovery: a retained ``binary_sensor`` config (device class
  ``occupancy``) under ``<discovery_prefix>/binary_sensor/<device_id>/person/config``,
  re-sent whenever Home Assistant announces ``online`` on ``<discovery_prefix>/status``.

Every event goes to the on-disk outbox (:mod:`tinyedge.outbox`) and leaves it only when the
broker acknowledges it, so events wait out a broker outage or a restart and go out in order
afterwards (paho reconnects with exponential back-off). One sender thread owns the outbox
writes and the sending; the frame loop only hands events over, and the network callbacks
only notify, so no lock is ever held across a paho call.
"""

from __future__ import annotations

import json
import logging
import queue
import random
import sqlite3
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from .errors import MqttError
from .events import Event
from .outbox import Outbox, default_state_dir

log = logging.getLogger(__name__)

MAX_INFLIGHT = 40
AUTH_REFUSED = {4, 5, 0x86, 0x87, 0x8C}  # v3 bad credentials / not authorised; v5 equivalents


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to publish. Secrets arrive here already read from a file or the
    environment (see :mod:`tinyedge.config`), never from the command line."""

    host: str
    device_id: str
    port: int = 1883
    prefix: str = ""
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls: bool = False
    keepalive: int = 30
    queue_size: int = 10_000
    queue_bytes: int = 16 * 1024 * 1024
    state_dir: str = ""
    outbox_sync: str = "FULL"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    client_id: str = ""
    connect_timeout: float = 3.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0

    @property
    def base(self) -> str:
        return (self.prefix or f"tinyedge/{self.device_id}").rstrip("/")

    def topic(self, leaf: str) -> str:
        return f"{self.base}/{leaf}"

    @property
    def uses_tls(self) -> bool:
        return self.tls or bool(self.tls_ca or self.tls_cert)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False
    kind: str = "state"  # "state" is retained and re-sent on connect; else an event type
    seq: int = 0  # the outbox's sequence number, for events


@dataclass
class PublisherStats:
    published: int = 0
    acked: int = 0
    dropped: int = 0
    reconnects: int = 0


class MqttPublisher:
    """Sends tinyedge's messages through one paho client.

    ``start()`` connects (a broker that is down is retried in the background; a broker that
    refuses our credentials or certificate raises :class:`MqttError`). ``publish_event``,
    ``set_person`` never block. ``close()`` says ``offline`` and waits for the queue to drain.
    """

    def __init__(self, settings: MqttSettings, device_name: str = "tinyedge") -> None:
        self.settings = settings
        self.device_name = device_name
        self.stats = PublisherStats()
        self.fatal: str | None = None
        self._connected = threading.Event()
        self._ever_connected = False
        self._warned_offline = False
        self._incoming: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._last_sent = 0
        state_dir = Path(settings.state_dir) if settings.state_dir else default_state_dir()
        self.outbox = Outbox(
            state_dir / "outbox.db",
            max_messages=settings.queue_size,
            max_bytes=settings.queue_bytes,
            synchronous=settings.outbox_sync,
        )
        if len(self.outbox):
            log.info("outbox: %d message(s) from an earlier run will be sent", len(self.outbox))
        self._state: dict[str, Message] = {}  # latest value per topic, re-sent on connect
        # Changes wait in order: a short ON -> OFF must reach the broker as both, not just OFF.
        self._state_changes: deque[Message] = deque()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._wake = threading.Condition()
        self._resend_state = False
        self._sending = False
        self._stopping = False
        self._sender: threading.Thread | None = None
        self.on_fatal: Callable[[str], None] | None = None
        self._client = self._make_client()

    # -- client set-up ----------------------------------------------------------------------
    def _make_client(self) -> paho.Client:
        s = self.settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=s.client_id or f"tinyedge-{s.device_id}",
            clean_session=True,
        )
        client.enable_logger(logging.getLogger("tinyedge.paho"))
        if s.username is not None:
            client.username_pw_set(s.username, s.password)
        if s.uses_tls:
            try:
                client.tls_set(
                    ca_certs=s.tls_ca,
                    certfile=s.tls_cert,
                    keyfile=s.tls_key,
                    cert_reqs=ssl.CERT_REQUIRED,
                )
            except (OSError, ValueError, ssl.SSLError) as exc:
                raise MqttError(s.address, f"TLS set-up failed ({exc})") from exc
        client.will_set(self.settings.topic("availability"), "offline", qos=1, retain=True)
        client.reconnect_delay_set(min_delay=int(s.reconnect_min), max_delay=int(s.reconnect_max))
        client.max_inflight_messages_set(50)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- public API ---------------------------------------------------------------------------
    def start(self) -> None:
        """Connect and start the network and sender threads."""
        s = self.settings
        self._put_state("availability", b"online")
        if s.discovery:
            self._put_discovery()
        self._sender = threading.Thread(target=self._send_loop, name="tinyedge-mqtt", daemon=True)
        self._sender.start()
        try:
            self._client.connect(s.host, s.port, keepalive=s.keepalive)
        except ssl.SSLCertVerificationError as exc:
            raise MqttError(s.address, f"TLS certificate rejected ({exc.verify_message})") from exc
        except ssl.SSLError as exc:
            raise MqttError(s.address, f"TLS handshake failed ({exc.reason or exc})") from exc
        except (TimeoutError, OSError) as exc:
            log.warning(
                "mqtt %s: broker unreachable (%s); events are queued and sent when it is back",
                s.address,
                exc.strerror or exc,
            )
            self._warned_offline = True
            self._client.connect_async(s.host, s.port, keepalive=s.keepalive)
            self._client.loop_start()
            return
        self._client.loop_start()
        # The broker's answer (CONNACK) arrives on the network thread; wait for it briefly so
        # that a refused password is reported now, as one line, rather than never.
        deadline = time.monotonic() + s.connect_timeout
        while time.monotonic() < deadline and not self._connected.is_set() and not self.fatal:
            time.sleep(0.01)
        if self.fatal:
            self._client.loop_stop()
            raise MqttError(s.address, self.fatal)

    def check(self) -> None:
        """Raise :class:`MqttError` if the broker has refused us since the last call."""
        if self.fatal:
            raise MqttError(self.settings.address, self.fatal)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def backlog(self) -> int:
        """Messages not yet acknowledged by the broker (queued plus in flight)."""
        return len(self.outbox) + self._incoming.qsize()

    def publish_event(self, event: Event, extra: dict[str, Any] | None = None) -> None:
        data = event.to_dict()
        if extra:
            data.update(extra)
        payload = json.dumps(data, separators=(",", ":")).encode()
        self._incoming.put(Message(self.settings.topic("events"), payload, kind=event.type))
        with self._wake:
            self._wake.notify_all()

    def set_person(self, present: bool) -> None:
        self._put_state("person", b"ON" if present else b"OFF")

    def set_state(self, leaf: str, payload: str | bytes) -> None:
        """A retained state topic under the prefix (latest value wins; re-sent on reconnect)."""
        self._put_state(leaf, payload.encode() if isinstance(payload, str) else payload)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued message is acknowledged; False on time-out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._wake:
                idle = not (
                    len(self.outbox)
                    or not self._incoming.empty()
                    or self._state_changes
                    or self._sending
                )
                self._wake.notify_all()
            if idle and self.connected:
                return True
            time.sleep(0.01)
        return False

    def close(self, timeout: float = 5.0) -> bool:
        """Publish ``offline``, drain the queue (up to ``timeout``), disconnect."""
        self._put_state("availability", b"offline")
        drained = self.flush(timeout) if self.connected else False
        if not drained and self.backlog:
            log.warning("mqtt: %d message(s) not delivered at shutdown", self.backlog)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if self._sender is not None:
            self._sender.join(timeout=2.0)
        self._store_incoming()  # whatever is still in memory goes to disk for the next run
        self._client.disconnect()
        self._client.loop_stop()
        self.outbox.close()
        return drained

    # -- state and queue ------------------------------------------------------------------------
    def _put_state(self, leaf: str, payload: bytes) -> None:
        self._put_state_topic(self.settings.topic(leaf), payload)

    def _put_state_topic(self, topic: str, payload: bytes) -> None:
        with self._wake:
            msg = Message(topic, payload, retain=True, kind="state")
            self._state[topic] = msg
            self._state_changes.append(msg)
            self._wake.notify_all()

    def _put_discovery(self) -> None:
        s = self.settings
        config = {
            "name": "Person",
            "unique_id": f"tinyedge_{s.device_id}_person",
            "object_id": f"tinyedge_{s.device_id}_person",
            "device_class": "occupancy",
            "state_topic": s.topic("person"),
            "payload_on": "ON",
            "payload_off": "OFF",
            "availability_topic": s.topic("availability"),
            "payload_available": "online",
            "payload_not_available": "offline",
            "json_attributes_topic": s.topic("events"),
            "qos": 1,
            "device": {
                "identifiers": [f"tinyedge_{s.device_id}"],
                "name": self.device_name,
                "manufacturer": "tinyedge",
                "model": "tinyedge person detector",
            },
        }
        topic = f"{s.discovery_prefix}/binary_sensor/{s.device_id}/person/config"
        self._put_state_topic(topic, json.dumps(config, separators=(",", ":")).encode())

    # -- sender thread ------------------------------------------------------------------------
    def _send_loop(self) -> None:
        while True:
            self._store_incoming()
            with self._wake:
                if self._stopping:
                    return
                self._drain_acks()
                if not self._connected.is_set() or not self._incoming.empty():
                    if self._incoming.empty():
                        self._wake.wait(0.5)
                    continue
                batch: list[Message] = []
                if self._resend_state:  # (re)connected: the broker gets the current state
                    self._resend_state = False
                    self._state_changes = deque(self._state[t] for t in sorted(self._state))
                batch.extend(self._state_changes)
                self._state_changes.clear()
                room = MAX_INFLIGHT - len(self._inflight)
                if room > 0:
                    for entry in self.outbox.after(self._last_sent, room):
                        batch.append(
                            Message(entry.topic, entry.payload, False, entry.kind, entry.seq)
                        )
                if not batch:
                    self._wake.wait(0.5)
                    continue
                self._sending = True
            try:
                self._send(batch)
            finally:
                with self._wake:
                    self._sending = False

    def _store_incoming(self) -> None:
        """Move new events from memory to the outbox (disk), off the frame loop."""
        while True:
            try:
                msg = self._incoming.get_nowait()
            except queue.Empty:
                return
            try:
                self.outbox.put(msg.topic, msg.payload, msg.kind)
            except sqlite3.Error as exc:  # a full or failing disk must not stop detection
                log.error("outbox: cannot store an event (%s); it is lost", exc)
                self.stats.dropped += 1

    def _send(self, batch: list[Message]) -> None:
        for i, msg in enumerate(batch):
            info = self._client.publish(msg.topic, msg.payload, qos=1, retain=msg.retain)
            if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
                with self._wake:  # paho refused it: state is re-sent later, events stay stored
                    self._state_changes.extendleft(
                        reversed([rest for rest in batch[i:] if rest.kind == "state"])
                    )
                return
            with self._wake:
                self.stats.published += 1
                if msg.kind != "state":
                    self._inflight[info.mid] = msg.seq
                    self._last_sent = max(self._last_sent, msg.seq)

    def _drain_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            seq = self._inflight.pop(mid, None)
            if seq is not None:
                self.outbox.ack(seq)
                self.stats.acked += 1

    # -- paho callbacks (network thread): record and notify, nothing more --------------------
    def _on_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        if reason.is_failure:
            if reason.value in AUTH_REFUSED:
                self.fatal = f"broker refused the connection ({reason})"
                client.disconnect()
                if self.on_fatal:
                    self.on_fatal(self.fatal)
            else:
                log.warning("mqtt %s: connection refused (%s)", self.settings.address, reason)
            return
        if self._ever_connected:
            self.stats.reconnects += 1
        if self._warned_offline:
            log.warning(
                "mqtt %s: connected; sending %d queued", self.settings.address, self.backlog
            )
        else:
            log.info("mqtt %s: connected", self.settings.address)
        self._ever_connected = True
        self._warned_offline = False
        if self.settings.discovery:
            client.subscribe(f"{self.settings.discovery_prefix}/status", qos=1)
        with self._wake:
            self._resend_state = True
            self._connected.set()
            self._wake.notify_all()

    def _on_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        self._connected.clear()
        if self._stopping or self.fatal:
            return
        # Jitter paho's exponential back-off, so that devices that lost the same broker do
        # not all come back in the same second.
        s = self.settings
        client.reconnect_delay_set(
            min_delay=max(1, round(s.reconnect_min * random.uniform(0.5, 1.5))),
            max_delay=max(1, round(s.reconnect_max * random.uniform(0.7, 1.0))),
        )
        if not self._warned_offline:
            self._warned_offline = True
            log.warning(
                "mqtt %s: connection lost (%s); queueing events and reconnecting",
                self.settings.address,
                reason,
            )

    def _on_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, props: Any
    ) -> None:
        self._acks.put(mid)

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        if msg.topic == f"{self.settings.discovery_prefix}/status" and msg.payload == b"online":
            log.info("mqtt: Home Assistant is online; re-sending discovery and state")
            with self._wake:
                self._resend_state = True
                self._wake.notify_all()


class MqttSink:
    """Pipeline sink: each event to ``events``; ``person`` ON at a start, OFF at an end."""

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher
        self._open: set[str] = set()
        publisher.set_person(False)

    def handle(self, event: Event) -> None:
        self.publisher.publish_event(event)
        if event.type == "start":
            self._open.add(event.id)
            self.publisher.set_person(True)
        elif event.type == "end":
            self._open.discard(event.id)
            if not self._open:
                self.publisher.set_person(False)

    def close(self) -> None:
        return None
