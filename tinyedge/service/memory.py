"""How much memory loading a model costs this process, for the model cache's budget.

On glibc the number is the growth of the C heap in use (``mallinfo2``: bytes handed out by
malloc in every arena plus mmapped blocks), which is stable from one load to the next; the
resident set size is used elsewhere, though freed pages that get reused make it noisier.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable
from functools import cache

_MALLINFO2_FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                     "uordblks", "fordblks", "keepcost")  # fmt: skip


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2_FIELDS]


@cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        fn = ctypes.CDLL(name).mallinfo2
    except (OSError, AttributeError):  # not glibc, or glibc older than 2.33
        return None
    fn.restype = _MallInfo2
    fn.argtypes = []
    call: Callable[[], _MallInfo2] = fn
    return call


def _resident() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def in_use() -> int:
    """Bytes this process holds by the best available measure, 0 when none is available."""
    fn = _mallinfo2()
    if fn is not None:
        info = fn()
        return int(info.uordblks + info.hblkhd)
    return _resident()
