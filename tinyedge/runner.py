"""The device process: builds the pipeline from a :class:`~tinyedge.config.Config`, wires
MQTT, health, watchdog and stats around it, and shuts down cleanly on SIGTERM / SIGINT
(open visits end, ``offline`` is published, the outbox is flushed within a deadline)."""

from __future__ import annotations

import logging
import signal
from typing import Any

from .config import Config
from .errors import ConfigError
from .model import PersonModel
from .mqtt import MqttPublisher, MqttSettings, MqttSink
from .pipeline import Hooks, Pipeline, PrintSink, Recovery, Sink, event_config_for
from .sources import open_source
from .stats import StatsReporter
from .systemd import Notifier

log = logging.getLogger("tinyedge")


def mqtt_settings(cfg: Config) -> MqttSettings:
    m = cfg.mqtt
    return MqttSettings(
        host=m.host or "",
        port=m.port,
        device_id=cfg.device_id,
        prefix=m.prefix,
        username=m.username,
        password=cfg.mqtt_password,
        tls=m.tls,
        tls_ca=m.tls_ca,
        tls_cert=m.tls_cert,
        tls_key=m.tls_key,
        keepalive=m.keepalive,
        queue_size=m.queue_size,
        queue_bytes=m.queue_bytes,
        outbox_sync=m.outbox_sync.upper(),
        state_dir=cfg.state_dir,
        discovery=m.discovery,
        discovery_prefix=m.discovery_prefix,
        reconnect_max=m.reconnect_max,
    )


def run_detector(cfg: Config) -> int:
    """``tinyedge detect``: run until the source ends or a signal arrives; 0 on a clean end."""
    if cfg.source.camera is None and cfg.source.uri is None:
        raise ConfigError(
            "source", "give --camera N or --source FILE|URL|DIR (or set it in the config)"
        )
    notifier = Notifier()
    model = PersonModel(cfg.model.path, num_threads=cfg.model.threads)
    log.info(
        "model %s (%d bytes, sha256 %s) on %s",
        model.info.path,
        model.info.size_bytes,
        model.info.sha256[:12],
        model.backend,
    )
    source = open_source(
        camera=cfg.source.camera,
        source=cfg.source.uri,
        realtime=cfg.source.realtime,
        loop=cfg.source.loop,
    )
    ev = cfg.events
    events = event_config_for(
        model,
        on_threshold=ev.on_threshold,
        off_threshold=ev.off_threshold,
        on_frames=ev.on_frames,
        window=ev.window,
        off_seconds=ev.off_seconds,
        update_seconds=ev.update_seconds,
    )
    sinks: list[Sink] = []
    publisher: MqttPublisher | None = None
    if cfg.mqtt.host:
        publisher = MqttPublisher(mqtt_settings(cfg), device_name=f"tinyedge {cfg.device_id}")
        publisher.start()
        sinks.append(MqttSink(publisher))
    if cfg.output.print or publisher is None:
        sinks.append(PrintSink())

    pipeline = Pipeline(
        source,
        model,
        events=events,
        camera=cfg.source.name,
        fit="crop" if cfg.source.fit == "crop" else "stretch",
        sinks=sinks,
        recovery=Recovery(
            max_delay=cfg.source.reconnect_max_delay, give_up_after=cfg.source.lost_timeout
        ),
    )
    stats = _stats_reporter(cfg, pipeline, publisher)
    pipeline.hooks = Hooks(
        on_ready=lambda: notifier.ready(f"detecting on {source.name}"),
        on_tick=lambda: _tick(notifier, publisher, stats),
        on_camera=(lambda state: publisher.set_state("camera", state)) if publisher else None,
    )

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: ending open visits and stopping", signum)
        pipeline.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        result = pipeline.run()
    finally:
        notifier.stopping()
        if publisher is not None:
            if stats is not None:
                stats.tick(force=True)
            publisher.close(timeout=cfg.mqtt.shutdown_timeout)
    log.info(
        "%d frames in %.2f s (%.0f fps), %d events",
        result.frames,
        result.seconds,
        result.fps,
        result.events,
    )
    return 0


def _tick(notifier: Notifier, publisher: MqttPublisher | None, stats: StatsReporter | None) -> None:
    notifier.tick()
    if publisher is not None:
        publisher.check()
    if stats is not None:
        stats.tick()


def _stats_reporter(
    cfg: Config, pipeline: Pipeline, publisher: MqttPublisher | None
) -> StatsReporter | None:
    if publisher is None or cfg.mqtt.stats_interval <= 0:
        return None

    def collect() -> dict[str, Any]:
        s = pipeline.stats
        return {
            "frames": s.frames,
            "inferences": s.inferences,
            "events": s.events,
            "outbox": publisher.backlog,
            "dropped": publisher.outbox.dropped + publisher.stats.dropped,
            "reconnects": publisher.stats.reconnects,
            "camera": pipeline.camera_state,
        }

    return StatsReporter(
        cfg.mqtt.stats_interval, collect, lambda text: publisher.set_state("stats", text)
    )
