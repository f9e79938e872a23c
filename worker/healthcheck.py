"""Container healthcheck: exits 0 when a worker on this host sent a heartbeat recently.

    python -m worker.healthcheck
"""
from __future__ import annotations

import socket
import sys

from core.settings import get_settings
from core.store import Stores


def main() -> int:
    host = socket.gethostname()
    try:
        workers = Stores.connect(get_settings().redis_url).workers.live()
    except Exception as e:
        print(f"unhealthy: {e}")
        return 1
    mine = [w for w in workers if host in w.name]
    print("healthy" if mine else f"unhealthy: no heartbeat from a worker on {host}")
    return 0 if mine else 1


if __name__ == "__main__":
    sys.exit(main())
