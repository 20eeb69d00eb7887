"""Map a stack over a dask.distributed cluster: one task per band of rows.

The single-process pipeline (:func:`~xafsmap.core.mapping.pipeline.iter_classify`) streams row
bands through one process. Here each band is a task on a cluster worker: the worker
opens the stack itself from its path (paths cross the network, never the 1.4–7 GB of
pixels), redoes the stack's preparation (drift correction, energy calibration, region
of interest, binning: the :func:`~xafsmap.core.prepare.steps.prepare_stack` steps recorded
on the :class:`~xafsmap.core.io.stack.Stack`), reads its band, runs the very same per-band
code (:func:`~xafsmap.core.mapping.pipeline.map_band_into`) and returns the band's small 2-D maps,
which the client places into the full maps. The trained
:class:`~xafsmap.core.model.training.Model` (a few MB) and the stack's description (with
the preparation's arrays: per-energy drift, per-pixel shift map) are scattered to
every worker once. Bands are independent and per-pixel, so the maps equal the
single-process run's exactly.

Workers need the same xafsmap installed and the stack's files at the same paths (a
shared file system); see ``docs/cluster.md``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..model.features import METRICS
from ..model.training import Model
from .pipeline import BAND_BYTES, MapResult, band_rows, finish_map, map_band_into
from .maps import new_maps
from .stacksource import StackSource, open_source, stack_source

if TYPE_CHECKING:
    from distributed import Client, Future

    from ..io.references import Reference
    from ..io.stack import Stack
    from ..model.classify import Classifier

__all__ = ["iter_map_distributed", "map_distributed", "open_client", "scatter_classifier", "scheduler_address",
           "train_model_distributed"]


def map_band_from_file(source: StackSource, r0: int, r1: int, model: Model, *, metric: str,
                       thick: float | None = None, band: int | None = None,
                       classifier: Classifier | None = None) -> dict:
    """Read rows ``[r0, r1)`` of a (prepared) stack from its file and map them (a worker's task).

    Parameters
    ----------
    source : StackSource
    r0, r1 : int
        First and past-the-last row of the band (of the prepared stack).
    model : Model
    metric : str
    thick : float, optional
        Absorbance above which a pixel is flagged too thick (default the model's limit).
    band : int, optional
        Rows per band of the run: the prepared stack is chunked to match, so a band
        reads only the raw rows it needs.
    classifier : Classifier, optional
        The model's classifier, when ``model`` travelled without it (scattered once
        for many stacks, see :func:`iter_map_distributed`).

    Returns
    -------
    dict of str to ndarray
        The band's maps, (r1 - r0, N) each, ``fractions`` (K, r1 - r0, N).
    """
    import dask
    from joblib import parallel_config

    model = model if classifier is None else replace(model, classifier=classifier)
    stack = open_source(source, band)
    data = dask.compute(stack.data[:, r0:r1], scheduler="synchronous")[0]
    maps = new_maps(model.classifier.references.shape[0], r1 - r0, source.shape[2])
    # worker processes are daemons: joblib's process pool is not allowed there, threads are
    with parallel_config(backend="threading"):
        map_band_into(np.asarray(data, dtype=np.float32), stack.energies, 0, r1 - r0, maps, model=model,
                  metric=metric, thick=thick, origin=r0)
    return maps


def iter_map_distributed(stack: Stack | StackSource, model: Model, *, client: Client, metric: str = "euclidean",
                         band_bytes: int = BAND_BYTES, thick: float | None = None,
                         classifier: Future | None = None) -> Generator[tuple[int, int], None, MapResult]:
    """Classify every pixel of a stack on a dask.distributed cluster, one task per row band.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack or StackSource
        A stack read from files, perhaps prepared with
        :func:`~xafsmap.core.prepare.steps.prepare_stack` (see :func:`stack_source`).
    model : Model
        Trained for this stack (:func:`~xafsmap.core.model.training.train_model` or
        :func:`train_model_distributed`).
    client : distributed.Client
    metric : {'euclidean', 'manhattan', 'jensen-shannon'}
    band_bytes : int
        Bytes of one band (all energies), as in the single-process run.
    thick : float, optional
        Absorbance above which a pixel is flagged too thick (default the model's limit).
    classifier : distributed.Future, optional
        ``model.classifier`` already on the workers (:func:`scatter_classifier`): a
        series maps many stacks with one classifier (the forest: MBs) and their own
        surveys (kBs), and sends the classifier once, not once per stack.

    Yields
    ------
    (done, total) : tuple of int
        Bands finished (in any order) out of all bands. The bands' task keys name the
        stack (``xafsmap-band-<stack file>-<r0>-<r1>-...``), so a scheduler's dashboard
        or task stream tells the stacks of a series apart.

    Returns
    -------
    MapResult
        Equal to :func:`~xafsmap.core.mapping.pipeline.iter_classify`'s for the same stack and model.

    Raises
    ------
    ValueError
        For an unknown metric, a stack held in memory, or a model trained on other energies.
    """
    from distributed import as_completed

    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    source = stack if isinstance(stack, StackSource) else stack_source(stack)
    if not np.array_equal(source.energies, model.classifier.energies):
        raise ValueError("the model was trained on other energies than this stack's")
    _, rows, cols = source.shape
    band = band_rows(source.shape, band_bytes)
    bands = [(r0, min(rows, r0 + band)) for r0 in range(0, rows, band)]
    maps = new_maps(model.classifier.references.shape[0], rows, cols)
    tic = time.perf_counter()
    # the model and the source (with the preparation's drift and shift map: up to
    # 27 MB for a 4000 x 1700 detector) travel to each worker once, not once per band
    light = model if classifier is None else replace(model, classifier=None)
    [shared, where] = client.scatter([light, source], broadcast=True, hash=False)
    tag = f"{Path(source.path).name}-{os.getpid()}-{time.time_ns()}"
    futures = {
        client.submit(map_band_from_file, where, r0, r1, shared, metric=metric, thick=thick, band=band,
                      classifier=classifier, pure=False, key=f"xafsmap-band-{tag}-{r0}-{r1}"): (r0, r1)
        for r0, r1 in bands
    }
    try:
        for done, future in enumerate(as_completed(futures, loop=client.loop), start=1):
            r0, r1 = futures[future]
            part = future.result()
            future.release()
            for name, value in part.items():
                maps[name][..., r0:r1, :] = value
            yield done, len(bands)
    finally:
        client.cancel(list(futures))
        shared.release()
        where.release()
    timings = {"map_s": time.perf_counter() - tic, "workers": len(client.scheduler_info()["workers"])}
    return finish_map(model, maps, metric=metric, thick=model.thick.limit if thick is None else float(thick),
                      timings=timings)


def scatter_classifier(classifier: Classifier, *, client: Client) -> Future:
    """Send a model's classifier to every worker once; the future to pass as ``classifier=``
    to :func:`iter_map_distributed` for each stack mapped with it."""
    return client.scatter(classifier, broadcast=True, hash=False)


def map_distributed(stack: Stack | StackSource, model: Model, *, client: Client, **options: Any) -> MapResult:
    """Run :func:`iter_map_distributed` to the end and return its :class:`MapResult`."""
    generator = iter_map_distributed(stack, model, client=client, **options)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def _train_from_file(source: StackSource, references: list[Reference], options: dict) -> Model:
    from ..model.training import train_model

    return train_model(open_source(source), references, **options)


def train_model_distributed(stack: Stack | StackSource, references: Iterable[Reference], *, client: Client,
                            **options: Any) -> Model:
    """Train on a worker, which reads the survey pixels from the file itself.

    For clients that do not see the stack's files (a laptop driving a cluster); the
    options are :func:`~xafsmap.core.model.training.train_model`'s, the result is the same
    :class:`~xafsmap.core.model.training.Model` (same seed, same model).
    """
    source = stack if isinstance(stack, StackSource) else stack_source(stack)
    return client.submit(_train_from_file, source, list(references), options, pure=False).result()


def scheduler_address(scheduler: str) -> str:
    """The address of a scheduler: given as such, or read from a scheduler file ``*.json``.

    Raises
    ------
    ValueError
        If the file is missing, not JSON, or holds no ``"address"`` (naming the file).

    Examples
    --------
    >>> scheduler_address("tcp://10.0.0.5:8786")
    'tcp://10.0.0.5:8786'
    >>> scheduler_address("/nonexistent/scheduler.json")
    Traceback (most recent call last):
    ValueError: scheduler file /nonexistent/scheduler.json does not exist (write it with dask scheduler --scheduler-file)
    """
    import json

    text = str(scheduler)
    if not text.endswith(".json"):
        return text
    try:
        data = json.loads(Path(text).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"scheduler file {text} does not exist (write it with dask scheduler "
                         "--scheduler-file)") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"scheduler file {text} is not a readable JSON file ({error})") from None
    address = data.get("address") if isinstance(data, dict) else None
    if not isinstance(address, str) or not address:
        raise ValueError(f"scheduler file {text} names no scheduler address (no \"address\" in it)")
    return address


@contextlib.contextmanager
def open_client(*, scheduler: str | None = None, workers: int | None = None, threads_per_worker: int = 1,
                timeout: float | None = None) -> Iterator[Client]:
    """A dask.distributed client: to a running scheduler, or to a new local cluster.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``, or a scheduler file
        ``*.json``).
    workers : int, optional
        Start a ``LocalCluster`` of this many worker processes on this machine
        (loopback only, no dashboard); closed on exit.
    threads_per_worker : int
        Threads per local worker.
    timeout : float, optional
        Seconds to wait for the scheduler to answer; default
        :data:`~xafsmap.core.settings.limits.CONNECT_SECONDS`.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ValueError
        If both or neither of ``scheduler`` and ``workers`` are given, ``workers`` < 1,
        the scheduler file is missing or invalid, or the scheduler does not answer in time.
    """
    from distributed import Client, LocalCluster

    from ..settings.limits import CONNECT_SECONDS

    if (scheduler is None) == (workers is None):
        raise ValueError("give either scheduler= (an address) or workers= (a number of local workers)")
    if scheduler is not None:
        address = scheduler_address(scheduler)
        timeout = CONNECT_SECONDS if timeout is None else timeout
        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"cannot reach the dask scheduler at {address} within {timeout:g} s ({error})") from None
        except Exception as error:  # whatever a stranger at that port makes distributed raise
            raise ValueError(f"what answers at {address} is not a dask scheduler ({type(error).__name__}: "
                             f"{str(error)[:80]})") from None
        with client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    with LocalCluster(n_workers=workers, threads_per_worker=threads_per_worker, processes=True,
                      host="127.0.0.1", dashboard_address=None) as cluster, Client(cluster) as client:
        yield client
