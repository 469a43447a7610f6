"""A throw-away PostgreSQL cluster for one process (each pytest-xdist worker, a benchmark run)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.pgcluster import Cluster, free_port


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Starts a cluster in a fresh temporary directory and removes it all afterwards. Durability
    is off (no fsync): nothing in it needs to survive a crash of the machine."""
    # Not under pytest's tmp_path: that is private to us, and PostgreSQL may run as another
    # account (we may be root). mkdtemp in the system temporary directory is reachable.
    root = Path(tempfile.mkdtemp(prefix="journeys-pg-"))
    try:
        cluster = _started(root)
        try:
            yield cluster
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _started(root: Path, attempts: int = 3) -> Cluster:
    for attempt in range(attempts):
        cluster = Cluster(root, free_port(), durable=False)
        cluster.init()
        try:
            cluster.start()
        except RuntimeError:
            if attempt == attempts - 1:
                raise
            continue  # most likely another process took the free port meanwhile
        return cluster
    raise AssertionError("unreachable")
