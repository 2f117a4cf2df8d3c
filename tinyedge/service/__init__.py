"""The edge inference service: a bigger person detector behind HTTP for tinyedge cameras.

``tinyedge serve`` runs :func:`main`; the pieces are :mod:`.app` (routes), :mod:`.batcher`
(dynamic batching), :mod:`.cache` (warm models within a memory budget), :mod:`.detectors`
(detector plugins), :mod:`.imaging` (safe decoding) and :mod:`.metrics` (Prometheus text).
"""

from .server import main

__all__ = ["main"]
