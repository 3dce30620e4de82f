"""The frame a proof runs in: SIGTERM unwinds it, its processes live in a workspace of its
own on private stores, and its report decides the exit status."""

import time
from collections.abc import Callable

from proofs.api import Report
from proofs.stack import Stores, Workspace, stop_on_sigterm


def run_proof(
    name: str,
    prove: Callable[[Workspace, Stores, Report], None],
    *,
    redis_cluster: bool = False,
) -> int:
    """`prove(space, stores, report)`, then every process stopped; 1 if any check failed.
    `redis_cluster`: the stores' Redis is a three-node Redis Cluster."""
    stop_on_sigterm()
    report = Report(name)
    started = time.monotonic()
    with Workspace(name) as space:
        prove(space, Stores(space, redis_cluster=redis_cluster), report)
    print(f"{time.monotonic() - started:.0f} s in all")
    return report.close()
