"""The device process: builds the pipeline from a :class:`~tinyedge.config.Config`, wires
MQTT, health, watchdog and stats around it, and shuts down cleanly on SIGTERM / SIGINT
(open visits end, ``offline`` is published, the outbox is flushed within a deadline)."""

from __future__ import annotations

import dataclasses
import logging
import signal
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import ConfigError
from .events import EventConfig
from .model import PersonModel
from .motion import MotionConfig
from .pipeline import Hooks, Pipeline, PrintSink, Recovery, Sink, event_config_for
from .sources import open_source
from .stats import StatsReporter
from .systemd import Notifier

if TYPE_CHECKING:
    from .mqtt import MqttPublisher, MqttSettings
    from .offload import EdgeGate

log = logging.getLogger("tinyedge")


def mqtt_settings(cfg: Config) -> MqttSettings:
    from .mqtt import MqttSettings

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
        confirm_seconds=ev.confirm_seconds,
        scene_seconds=ev.scene_seconds,
        scene_margin=ev.scene_margin,
    )
    sinks: list[Sink] = []
    publisher: MqttPublisher | None = None
    if cfg.mqtt.host:
        # Imported only when a broker is configured: paho, ssl and sqlite cost a --print
        # run ~4 MB of RSS for nothing.
        from .mqtt import MqttPublisher, MqttSink

        publisher = MqttPublisher(mqtt_settings(cfg), device_name=f"tinyedge {cfg.device_id}")
        publisher.start()
        sinks.append(MqttSink(publisher))
    if cfg.output.print or publisher is None:
        sinks.append(PrintSink())

    gate = _edge_gate(cfg, events)
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
        gate=gate,
        offload_image="frame" if cfg.offload.send == "frame" else "model",
        motion=MotionConfig(**dataclasses.asdict(cfg.motion)),
        max_fps=cfg.source.max_fps,
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
        if gate is not None:
            gate.client.close()
            log.info("offload: %d frame(s) decided by the edge", gate.edge_decided)
        if publisher is not None:
            if stats is not None:
                stats.tick(force=True)
            publisher.close(timeout=cfg.mqtt.shutdown_timeout)
    log.info(
        "%d frames analysed in %.2f s (%.0f fps; %d let go for max_fps), %d events",
        result.frames,
        result.seconds,
        result.fps,
        result.dropped,
        result.events,
    )
    return 0


def _edge_gate(cfg: Config, events: EventConfig) -> EdgeGate | None:
    """The offload client and gate, only when the user turned offload on."""
    o = cfg.offload
    if not o.enabled:
        return None
    import ssl

    from .offload import EdgeGate, OffloadClient

    context = ssl.create_default_context(cafile=o.tls_ca) if o.tls_ca else None
    client = OffloadClient(
        o.url or "",
        cfg.offload_token or "",
        band=(o.band_low, o.band_high),
        max_per_minute=o.max_per_minute,
        timeout_s=o.timeout,
        breaker_failures=o.breaker_failures,
        cooldown_s=o.cooldown,
        model=o.model,
        ssl_context=context,
    )
    log.info("offload: frames scoring %.2f-%.2f go to %s", o.band_low, o.band_high, o.url)
    # A little beyond the HTTP time-out, for the JPEG encoding before the request.
    return EdgeGate(client, events.on_threshold, events.off_threshold, o.timeout + 0.1)


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
