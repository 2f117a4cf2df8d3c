"""The durable outbox: every event is on disk before MQTT sees it, and leaves only when the
broker has acknowledged it (QoS 1 PUBACK).

SQLite in WAL mode, in the state directory. On restart the outbox is replayed in order, so
delivery is *at least once*: consumers de-duplicate on the event's (``id``, ``seq``).
Bounded by count and bytes: when full, the oldest ``update`` messages go first; ``start``
and ``end`` are never dropped (the outbox may then exceed its bound, and says so once).
A corrupt file is moved aside with a warning and a fresh outbox is started.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    topic   TEXT    NOT NULL,
    payload BLOB    NOT NULL,
    kind    TEXT    NOT NULL,
    created REAL    NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

DROPPABLE = "update"


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    topic: str
    payload: bytes
    kind: str


def default_state_dir() -> Path:
    """systemd's $STATE_DIRECTORY, else /var/lib/tinyedge when writable, else the user's
    $XDG_STATE_HOME/tinyedge (~/.local/state/tinyedge)."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    system = Path("/var/lib/tinyedge")
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "tinyedge"


class Outbox:
    """A bounded, ordered, crash-safe queue of MQTT messages. Thread-safe."""

    def __init__(
        self,
        path: str | Path,
        max_messages: int = 10_000,
        max_bytes: int = 16 * 1024 * 1024,
        synchronous: str = "FULL",
    ) -> None:
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._synchronous = synchronous
        self._lock = threading.Lock()
        self._warned_over = False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._take_lock()
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.warning(
                "outbox %s is corrupt (%s); moved to %s, starting afresh", self.path, exc, aside
            )
            for suffix in ("", "-wal", "-shm"):
                src = Path(f"{self.path}{suffix}")
                if src.exists():
                    src.rename(f"{aside}{suffix}")
            self._db = self._open()
            self.corrupt_recovered = True
        else:
            self.corrupt_recovered = False
        self._count, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()

    def _take_lock(self) -> int:
        """One process per outbox: a second detector on the same state directory would send
        (and acknowledge) the first one's messages. The lock goes with the process."""
        lock_path = self.path.with_name(f"{self.path.name}.lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConfigError(
                "state_dir",
                f"{self.path.parent} is in use by another tinyedge process; "
                "give each detector its own state_dir (--state-dir)",
            ) from None
        return fd

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={self._synchronous}")
            db.executescript(SCHEMA)
            row = db.execute("PRAGMA quick_check").fetchone()
            if row is None or row[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {row}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    # -- writing ------------------------------------------------------------------------------
    def put(self, topic: str, payload: bytes, kind: str) -> int:
        """Store a message durably; returns its sequence number."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, kind, created) VALUES (?, ?, ?, ?)",
                (topic, payload, kind, time.time()),
            )
            self._count += 1
            self._bytes += len(payload)
            if self._count > self.max_messages or self._bytes > self.max_bytes:
                self._shed()
            return int(cur.lastrowid or 0)

    def _shed(self) -> None:
        while self._count > self.max_messages or self._bytes > self.max_bytes:
            row = self._db.execute(
                "SELECT seq, LENGTH(payload) FROM outbox WHERE kind = ? ORDER BY seq LIMIT 1",
                (DROPPABLE,),
            ).fetchone()
            if row is None:
                if not self._warned_over:
                    self._warned_over = True
                    log.warning(
                        "outbox over its bound (%d messages) with only start/end left; keeping them",
                        self._count,
                    )
                return
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (row[0],))
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('dropped', 1) "
                "ON CONFLICT(key) DO UPDATE SET value = value + 1"
            )
            self._count -= 1
            self._bytes -= int(row[1])

    def ack(self, seq: int) -> None:
        """The broker has the message: forget it."""
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM outbox WHERE seq = ? RETURNING LENGTH(payload)", (seq,)
            )
            row = cur.fetchone()
            if row is not None:
                self._count -= 1
                self._bytes -= int(row[0])

    # -- reading ------------------------------------------------------------------------------
    def after(self, seq: int, limit: int = 100) -> list[Entry]:
        """Messages with a sequence number above ``seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, topic, payload, kind FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return [Entry(int(r[0]), str(r[1]), bytes(r[2]), str(r[3])) for r in rows]

    def __len__(self) -> int:
        return int(self._count)

    @property
    def size_bytes(self) -> int:
        return int(self._bytes)

    @property
    def dropped(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # closing the descriptor releases the lock
                self._lock_fd = -1
