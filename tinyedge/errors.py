"""tinyedge's exceptions: one base class the CLI turns into a single line and an exit code."""

from __future__ import annotations


class TinyEdgeError(Exception):
    """Base of every error tinyedge raises on purpose (bad input, missing hardware, ...).

    ``exit_code`` is what the CLI exits with; ``str(err)`` is the one line it prints.
    """

    exit_code = 1


class ConfigError(TinyEdgeError):
    """A configuration file, environment variable or flag has a bad value."""

    exit_code = 2

    def __init__(self, key: str, problem: str) -> None:
        self.key = key
        self.problem = problem
        super().__init__(f"config: {key}: {problem}")


class ModelError(TinyEdgeError):
    """A model file is missing, corrupt, or not something the pipeline can feed."""

    exit_code = 3

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"model {path}: {problem}")


class SourceError(TinyEdgeError):
    """A camera, stream, file or folder cannot be opened or stopped delivering frames."""

    exit_code = 4

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(f"source {source}: {problem}")


class MqttError(TinyEdgeError):
    """The broker refused us (bad credentials, TLS failure) or cannot be reached."""

    exit_code = 5

    def __init__(self, broker: str, problem: str) -> None:
        self.broker = broker
        self.problem = problem
        super().__init__(f"mqtt {broker}: {problem}")
