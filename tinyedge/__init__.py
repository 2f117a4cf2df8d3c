"""tinyedge: private, on-device person detection for cameras.

>>> import tinyedge
>>> for event in tinyedge.detect("examples/plaza.mp4"):
...     print(event.type, event.id)
"""

from .errors import ConfigError, ModelError, MqttError, SourceError, TinyEdgeError
from .events import Event, EventConfig, VisitTracker
from .model import ModelInfo, PersonModel, default_model_path
from .pipeline import Hooks, Pipeline, PrintSink, detect
from .preprocess import InputSpec, Preprocessor
from .sources import Frame, ImageFolderSource, OpenCVSource, Picamera2Source, open_source

# The one place the version is written (pyproject.toml reads it from here): importing
# importlib.metadata instead would cost every detector process ~2 MB of RSS.
__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Event",
    "EventConfig",
    "Frame",
    "Hooks",
    "ImageFolderSource",
    "InputSpec",
    "ModelError",
    "ModelInfo",
    "MqttError",
    "OpenCVSource",
    "PersonModel",
    "Picamera2Source",
    "Pipeline",
    "Preprocessor",
    "PrintSink",
    "SourceError",
    "TinyEdgeError",
    "VisitTracker",
    "__version__",
    "default_model_path",
    "detect",
    "open_source",
]
