"""Helpers for the processes this project starts (a stack's children, training ranks),
torch-free so the launcher can use them."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
from ctypes import CDLL

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Ask the kernel (Linux) to send `sig` to this process when its parent dies. With the
    `parent`'s pid: if that parent is already gone (it died before this ran), exit now."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: children then outlive a killed parent
        CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig))
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
