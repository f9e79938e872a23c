"""`python -m launcher.publish NAME...`: datasets of FPAR_DATA_DIR (folders in the GTEA61
layout, prepared by hand) sent to FPAR_DATA_STORE and published, so that every host lists
and trains on them. Ingested datasets are published by their ingest; this is for the rest."""
from __future__ import annotations

import sys
from pathlib import Path

from core.settings import Settings


def publish(names: list[str], data_dir: Path | None = None, *, only_new: bool = False) -> None:
    """Send each (again, unless `only_new`: then only those the store has not published)."""
    settings = Settings(**({"data_dir": data_dir} if data_dir else {}))
    store = settings.data
    if store.shared:
        print(f"FPAR_DATA_STORE is not s3://: {settings.data_dir} is shared as it is, nothing to send")
        return
    done = set(store.published()) if only_new else set()
    for name in names:
        if not (settings.data_dir / name).is_dir():
            raise SystemExit(f"{settings.data_dir / name} is not a folder")
        if name not in done:
            store.send(name)
            print(f"{name}: published to {store.url}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    publish(sys.argv[1:])
