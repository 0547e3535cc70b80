"""A Dask client: to a running cluster at an address, or to a ``LocalCluster`` started for the occasion.

One helper for every command that spreads work over processes or machines (``workbench count``,
``workbench experiment``): with ``scheduler`` (``tcp://host:8786``) the work goes to that
cluster, whose workers must have the package and see the same files; without it, a local
cluster of ``workers`` single-threaded processes is started and closed again afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager

__all__ = ["dask_client"]


@contextmanager
def dask_client(scheduler: str | None, *, workers: int):
    """``with dask_client(address_or_None, workers=N) as client: …``; a local cluster is closed on exit."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler, timeout=30)
        try:
            yield client
        finally:
            client.close()
        return
    if workers < 1:
        raise ValueError(f"The number of local worker processes must be at least 1; got {workers}.")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        yield client
