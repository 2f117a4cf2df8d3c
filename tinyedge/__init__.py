"""tinyedge: private, on-device person detection for cameras."""

from importlib.metadata import PackageNotFoundError, version

from .errors import ConfigError, ModelError, MqttError, SourceError, TinyEdgeError
from .model import ModelInfo, PersonModel, default_model_path
from .preprocess import InputSpec, Preprocessor

try:
    __version__ = version("tinyedge")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ConfigError",
    "InputSpec",
    "ModelError",
    "ModelInfo",
    "MqttError",
    "PersonModel",
    "Preprocessor",
    "SourceError",
    "TinyEdgeError",
    "__version__",
    "default_model_path",
]
