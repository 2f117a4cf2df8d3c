"""End to end against real Mosquitto processes: the detector as a user runs it, a separate
subscriber, retained state, last will, Home Assistant discovery, TLS and passwords, and a
broker that is down when the detector starts."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .conftest import CLIP, ROOT, run_cli


def topics(dev: str) -> dict[str, str]:
    base = f"tinyedge/{dev}"
    return {
        "events": f"{base}/events",
        "person": f"{base}/person",
        "availability": f"{base}/availability",
        "discovery": f"homeassistant/binary_sensor/{dev}/person/config",
    }


def detect_clip(model, device_id: str, *extra: str, env: dict[str, str] | None = None):
    """``tinyedge detect`` on the bundled clip, as a user runs it, to completion."""
    args = ["--source", str(CLIP), "--model", str(model), "--device-id", device_id, *extra]
    return run_cli("detect", *args, env=env)


def payloads(sub, topic: str) -> list[str]:
    return [m.payload.decode() for m in sub.on(topic)]


def test_clip_events_reach_a_subscriber(broker, subscribe, device_id, plain_model):
    t = topics(device_id)
    sub = subscribe(broker.port, [f"tinyedge/{device_id}/#", t["discovery"]])
    res = detect_clip(
        plain_model,
        device_id,
        "--mqtt",
        f"127.0.0.1:{broker.port}",
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout == ""  # with a broker and no --print, nothing on stdout
    assert sub.wait_for(lambda: any('"type":"end"' in p for p in payloads(sub, t["events"])))
    events = [json.loads(p) for p in payloads(sub, t["events"])]
    types = [e["type"] for e in events]
    assert types[0] == "start" and types[-1] == "end" and "start" in types
    visit = [e for e in events if e["id"] == events[0]["id"]]
    assert visit[0]["type"] == "start" and visit[-1]["type"] == "end"
    for e in events:
        assert e["model_sha256"] == e["model_sha256"].lower() and len(e["model_sha256"]) == 64
        assert e["time"].endswith("Z") and isinstance(e["epoch"], float)
        assert e["decided_by"] == "local" and e["camera"] == "cam0"
    # Never one message per frame: 300 frames, a handful of events.
    assert len(events) < 20
    # person went ON for the visit and OFF after it; availability said online, then offline.
    assert sub.wait_for(lambda: payloads(sub, t["availability"])[-1:] == ["offline"])
    assert "ON" in payloads(sub, t["person"]) and payloads(sub, t["person"])[-1] == "OFF"
    assert "online" in payloads(sub, t["availability"])
    config = json.loads(payloads(sub, t["discovery"])[-1])
    assert config["device_class"] == "occupancy" and config["state_topic"] == t["person"]
    assert config["availability_topic"] == t["availability"]


def test_retained_state_for_a_late_subscriber(broker, subscribe, device_id, plain_model):
    t = topics(device_id)
    res = detect_clip(
        plain_model,
        device_id,
        "--mqtt",
        f"127.0.0.1:{broker.port}",
    )
    assert res.returncode == 0, res.stderr
    late = subscribe(broker.port, [t["person"], t["availability"], t["discovery"]])
    assert late.wait_for(lambda: len(late.messages) >= 3, timeout=5)
    assert all(m.retain for m in late.messages)
    assert payloads(late, t["person"]) == ["OFF"]
    assert payloads(late, t["availability"]) == ["offline"]


def _detector(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tinyedge", "detect", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_last_will_and_discovery_resent(broker, subscribe, device_id, plain_model):
    t = topics(device_id)
    sub = subscribe(broker.port, [t["availability"], t["discovery"], t["events"]])
    proc = _detector(
        "--source",
        str(CLIP),
        "--realtime",
        "--model",
        str(plain_model),
        "--mqtt",
        f"127.0.0.1:{broker.port}",
        "--device-id",
        device_id,
    )
    try:
        assert sub.wait_for(lambda: payloads(sub, t["availability"]) == ["online"], timeout=15)
        assert sub.wait_for(lambda: len(payloads(sub, t["discovery"])) == 1, timeout=5)
        # Home Assistant restarts and says so: the detector re-sends its discovery config.
        sub.client.publish("homeassistant/status", "online", qos=1)
        assert sub.wait_for(lambda: len(payloads(sub, t["discovery"])) >= 2, timeout=5)
        proc.kill()  # no goodbye: the broker publishes the last will
        proc.wait(10)
        assert sub.wait_for(
            lambda: payloads(sub, t["availability"])[-1:] == ["offline"], timeout=10
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_broker_down_at_start_events_arrive_after_it_comes_up(
    own_broker, subscribe, device_id, plain_model
):
    t = topics(device_id)
    proc = _detector(
        "--source",
        str(CLIP),
        "--realtime",
        "--model",
        str(plain_model),
        "--mqtt",
        f"127.0.0.1:{own_broker.port}",
        "--device-id",
        device_id,
        "-v",
    )
    try:
        time.sleep(8)  # the visit starts while nobody is listening
        own_broker.start()
        sub = subscribe(own_broker.port, [t["events"]])
        assert proc.wait(60) == 0
        _out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sub.wait_for(lambda: any('"end"' in p for p in payloads(sub, t["events"])), timeout=10)
    events = [json.loads(p) for p in payloads(sub, t["events"])]
    assert events[0]["type"] == "start"  # the queued start was not lost
    assert [e["seq"] for e in events if e["id"] == events[0]["id"]] == list(
        range(len([e for e in events if e["id"] == events[0]["id"]]))
    )
    assert err.count("broker unreachable") == 1  # said once, not per frame


def test_tls_and_password(tls_broker, subscribe, device_id, plain_model, tmp_path):
    t = topics(device_id)
    sub = subscribe(
        tls_broker.port, [t["events"]], username="tinyedge", password="s3cret-pw", ca=tls_broker.ca
    )
    pw = tmp_path / "pw"
    pw.write_text("s3cret-pw\n")
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'[mqtt]\nhost = "localhost"\nport = {tls_broker.port}\ntls = true\n'
        f'tls_ca = "{tls_broker.ca}"\nusername = "tinyedge"\npassword_file = "{pw}"\n'
    )
    res = detect_clip(
        plain_model,
        device_id,
        "--config",
        str(cfg),
    )
    assert res.returncode == 0, res.stderr
    assert sub.wait_for(lambda: any('"end"' in p for p in payloads(sub, t["events"])), timeout=10)


def test_wrong_password_is_one_line_and_nonzero(tls_broker, device_id, plain_model, tmp_path):
    res = detect_clip(
        plain_model,
        device_id,
        "--mqtt",
        f"localhost:{tls_broker.port}",
        env={
            "TINYEDGE_MQTT_TLS": "true",
            "TINYEDGE_MQTT_TLS_CA": str(tls_broker.ca),
            "TINYEDGE_MQTT_USERNAME": "tinyedge",
            "TINYEDGE_MQTT_PASSWORD": "wrong",
        },
    )
    assert res.returncode == 5
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused" in lines[0] and "Traceback" not in res.stderr


def test_untrusted_broker_certificate_is_one_line(tls_broker, device_id, plain_model):
    res = detect_clip(
        plain_model,
        device_id,
        "--mqtt",
        f"localhost:{tls_broker.port}",
        env={
            "TINYEDGE_MQTT_TLS": "true",
            "TINYEDGE_MQTT_USERNAME": "tinyedge",
            "TINYEDGE_MQTT_PASSWORD": "s3cret-pw",
        },
    )
    assert res.returncode == 5
    assert "certificate" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_password_is_not_accepted_on_the_command_line():
    res = run_cli("detect", "--password", "x")
    assert res.returncode == 2 and "unrecognized arguments" in res.stderr
