"""The product's main job, as the README runs it: the shipped model on the bundled clip,
published through a real Mosquitto broker to a separate subscriber.

The clip is 4 s of the empty plaza, 20 s of people walking (4.0 s to 24.0 s), then 6 s of
the empty plaza again, so a visit must start after the intro and end, cleared, before the
clip does."""

from __future__ import annotations

import hashlib
import json

from tinyedge.model import default_model_path

from .conftest import CLIP, run_cli

PEOPLE_FROM, PEOPLE_TO, CLIP_END = 4.0, 24.0, 30.0


def test_readme_command_prints_a_visit_with_the_shipped_model():
    res = run_cli("detect", "--source", str(CLIP))
    assert res.returncode == 0, res.stderr
    events = [json.loads(line) for line in res.stdout.splitlines()]
    assert events, "no events"
    assert {e["model"] for e in events} == {"tinyedge-person"}
    starts = [e for e in events if e["type"] == "start"]
    ends = [e for e in events if e["type"] == "end" and e["reason"] == "clear"]
    assert starts and ends, events
    first, last = starts[0], ends[-1]
    assert PEOPLE_FROM - 0.5 <= first["source_time"] <= PEOPLE_FROM + 3.0, first
    assert PEOPLE_TO <= last["source_time"] < CLIP_END, last
    assert len(events) < 20


def test_shipped_model_events_reach_mqtt(broker, subscribe, device_id):
    topic = f"tinyedge/{device_id}/events"
    sub = subscribe(broker.port, [topic, f"tinyedge/{device_id}/person"])
    res = run_cli("detect", "--source", str(CLIP), "--mqtt", f"127.0.0.1:{broker.port}",
                  "--device-id", device_id)  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert sub.wait_for(lambda: any(b'"reason":"clear"' in m.payload for m in sub.on(topic)))
    events = [json.loads(m.payload) for m in sub.on(topic)]
    assert events[0]["type"] == "start"
    assert (
        events[0]["model_sha256"] == hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    )
    person = [m.payload for m in sub.on(f"tinyedge/{device_id}/person")]
    assert b"ON" in person and person[-1] == b"OFF"
