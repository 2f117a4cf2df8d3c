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
    """The issue-2 done criterion: the README command, the shipped model, one visit that
    starts with the walkers and ends, cleared, after them. The walkers are about 6x12 pixels
    once the frame is squeezed to the model's input, and the whole frame is all the model
    sees by default (motion zoom is opt-in)."""
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


def test_readme_command_runs_the_shipped_model(broker, subscribe, device_id):
    """The README's command with the shipped model, publishing through a real broker: the
    model loads from the package, the device announces itself, and any event it sends
    names the shipped model."""
    base = f"tinyedge/{device_id}"
    discovery = f"homeassistant/binary_sensor/{device_id}/person/config"
    sub = subscribe(broker.port, [f"{base}/#", discovery])
    res = run_cli(
        "detect", "--source", str(CLIP), "--mqtt", f"127.0.0.1:{broker.port}",
        "--device-id", device_id, "-v",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    sha = hashlib.sha256(default_model_path().read_bytes()).hexdigest()
    assert f"sha256 {sha[:12]}" in res.stderr and "300 frames" in res.stderr
    assert sub.wait_for(
        lambda: [m.payload for m in sub.on(f"{base}/availability")][-1:] == [b"offline"]
    )
    assert [m.payload for m in sub.on(f"{base}/person")][-1] == b"OFF"
    assert sub.on(discovery)
    for message in sub.on(f"{base}/events"):
        assert json.loads(message.payload)["model_sha256"] == sha
