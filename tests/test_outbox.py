"""The on-disk outbox: order, acknowledgement, bounds, restart, corruption."""

from __future__ import annotations

import sqlite3

from tinyedge.outbox import Outbox


def test_order_ack_and_restart(tmp_path):
    box = Outbox(tmp_path / "o.db")
    seqs = [box.put("t", f"m{i}".encode(), "update") for i in range(5)]
    assert seqs == sorted(seqs) and len(box) == 5
    box.ack(seqs[1])
    box.ack(seqs[1])  # a repeated ack is harmless
    assert [e.payload for e in box.after(0)] == [b"m0", b"m2", b"m3", b"m4"]
    assert [e.payload for e in box.after(seqs[2])] == [b"m3", b"m4"]
    box.close()
    again = Outbox(tmp_path / "o.db")  # a restart replays what was not acknowledged
    assert [e.payload for e in again.after(0)] == [b"m0", b"m2", b"m3", b"m4"]
    assert len(again) == 4 and again.size_bytes == 8


def test_bound_drops_oldest_updates_never_start_or_end(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=4)
    box.put("t", b"s", "start")
    for i in range(3):
        box.put("t", f"u{i}".encode(), "update")
    box.put("t", b"e", "end")  # 5 > 4: the oldest update goes
    assert [e.payload for e in box.after(0)] == [b"s", b"u1", b"u2", b"e"]
    assert box.dropped == 1
    for i in range(3):
        box.put("t", f"s{i}".encode(), "start")
    kinds = [e.kind for e in box.after(0)]
    assert kinds.count("update") == 0 and kinds.count("start") == 4 and kinds.count("end") == 1
    assert box.dropped == 3  # only updates were dropped; start/end stay past the bound


def test_byte_bound(tmp_path):
    box = Outbox(tmp_path / "o.db", max_bytes=1000)
    for _ in range(20):
        box.put("t", b"x" * 100, "update")
    assert box.size_bytes <= 1000 and box.dropped == 10


def test_corrupt_file_is_moved_aside(tmp_path, caplog):
    path = tmp_path / "o.db"
    path.write_bytes(b"garbage, not SQLite" * 200)
    box = Outbox(path)
    assert box.corrupt_recovered and len(box) == 0
    assert list(tmp_path.glob("o.db.corrupt-*"))
    assert "corrupt" in caplog.text
    box.put("t", b"ok", "start")
    assert len(box) == 1


def test_wal_mode(tmp_path):
    Outbox(tmp_path / "o.db").close()
    with sqlite3.connect(tmp_path / "o.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_process_cannot_share_an_outbox(tmp_path):
    """Two detectors on one state directory would send and acknowledge each other's
    messages (the first one's counts went negative when that happened): the second one is
    refused, with the key to change, until the first lets go."""
    import subprocess
    import sys

    import pytest

    from tinyedge.errors import ConfigError

    first = Outbox(tmp_path / "outbox.db")
    probe = (
        "import sys; from tinyedge.outbox import Outbox; from tinyedge.errors import ConfigError\n"
        "try:\n    Outbox(sys.argv[1]).close(); print('opened')\n"
        "except ConfigError as e:\n    print(e)\n"
    )
    other = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "outbox.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert "in use by another tinyedge process" in other.stdout, other.stderr
    assert "state_dir" in other.stdout
    with pytest.raises(ConfigError):  # in this process too
        Outbox(tmp_path / "outbox.db")
    first.close()
    again = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "outbox.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert again.stdout.strip() == "opened", again.stderr
