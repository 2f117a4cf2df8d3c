"""Config: TOML, environment, flags; errors name the key; secrets never printed."""

from __future__ import annotations

import pytest

from tinyedge.config import load_config
from tinyedge.errors import ConfigError


def write(tmp_path, text: str):
    p = tmp_path / "config.toml"
    p.write_text(text)
    return p


def test_file_then_env_then_flags(tmp_path):
    path = write(
        tmp_path, 'device_id = "door"\n[mqtt]\nhost = "a"\nport = 1884\n[events]\non_frames = 2\n'
    )
    cfg = load_config(path, env={"TINYEDGE_MQTT_HOST": "b"}, overrides={"mqtt": {"port": 1999}})
    assert (cfg.device_id, cfg.mqtt.host, cfg.mqtt.port, cfg.events.on_frames) == (
        "door",
        "b",
        1999,
        2,
    )


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[mqtt]\nhots = 'x'\n", "mqtt.hots"),
        ("[mqtt]\nport = 'x'\n", "mqtt.port"),
        ("[events]\non_threshold = 0.3\noff_threshold = 0.5\n", "events.off_threshold"),
        ("[events]\nconfirm_seconds = -5\n", "events.confirm_seconds"),
        ("[events]\nscene_seconds = -1\n", "events.scene_seconds"),
        ("[events]\nscene_margin = 2\n", "events.scene_margin"),
        ("[mqtt]\ntls_cert = '/nope.pem'\n", "mqtt.tls_cert"),
        ("[source]\nfit = 'zoom'\n", "source.fit"),
        ("nonsense = 1\n", "nonsense"),
        ("[mqtt\n", "config.toml"),
    ],
)
def test_errors_name_the_key(tmp_path, text, key):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), env={})
    assert key in str(err.value) and "\n" not in str(err.value)


def test_env_value_is_type_checked():
    with pytest.raises(ConfigError, match="TINYEDGE_EVENTS_WINDOW"):
        load_config(None, env={"TINYEDGE_EVENTS_WINDOW": "five"})


def test_password_from_file_or_env_and_masked(tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    cfg = load_config(write(tmp_path, f"[mqtt]\nusername = 'u'\npassword_file = '{pw}'\n"), env={})
    assert cfg.mqtt_password == "hunter2"
    assert "hunter2" not in repr(cfg) and "hunter2" not in str(cfg.masked())
    cfg = load_config(None, env={"TINYEDGE_MQTT_USERNAME": "u", "TINYEDGE_MQTT_PASSWORD": "x"})
    assert cfg.mqtt_password == "x"


def test_missing_config_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent/tinyedge.toml", env={})
