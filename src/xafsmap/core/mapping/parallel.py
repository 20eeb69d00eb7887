"""Map a stack over a dask.distributed cluster: one task per band of rows.

The single-process pipeline (:func:`~xafsmap.core.mapping.pipeline.iter_classify`) streams row
bands through one process. Here each band is a task on a cluster worker: the worker
opens the stack itself from its path (paths cross the network, never the 1.4–7 GB of
pixels), redoes the stack's preparation (drift correction, energy calibration, region
of interest, binning: the :func:`~xafsmap.core.prepare.steps.prepare_stack` steps recorded
on the :class:`~xafsmap.core.io.stack.Stack`), reads its band, runs the very same per-band
code (:func:`~xafsmap.core.mapping.pipeline._map_band`) and returns the band's small 2-D maps,
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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..model.classify import METRICS
from .pipeline import BAND_BYTES, MapResult, band_rows, _map_band, finish_map, new_maps
from ..model.training import Model

__all__ = ["StackSource", "iter_map_distributed", "map_distributed", "open_client", "scheduler_address",
           "stack_source", "train_model_distributed"]

_ROLES = ("flat", "dark", "i0")


@dataclass(frozen=True, eq=False)
class StackSource:
    """How a worker re-opens a stack: its files, its preparation, and what the client saw.

    Attributes
    ----------
    path : str
        The stack (as given to :func:`~xafsmap.core.io.stack.read_stack`).
    energies : ndarray, shape (E,), float64
        Energies in eV of the stack to map (after preparation).
    flat, dark, i0 : str or None
        Files of the flat field, dark and incident-beam spectrum, if any.
    shape : tuple of int
        (E, M, N) of the stack to map as the client built it; a worker that builds
        another shape refuses.
    name : str
        The client's dask name of the stack to map: identifies the files and the
        preparation (a worker's cache key).
    read_energies : ndarray, shape (E0,), float64
        Energies in eV given to ``read_stack`` (before preparation).
    preparation : tuple of xafsmap.core.prepare.steps.Preparation
        The ``prepare_stack`` steps to redo after reading, oldest first.
    """

    path: str
    energies: np.ndarray
    flat: str | None
    dark: str | None
    i0: str | None
    shape: tuple
    name: str
    read_energies: np.ndarray
    preparation: tuple = ()

    def key(self) -> tuple:
        """Hashable identity (for the per-worker cache of opened stacks)."""
        return (self.path, self.flat, self.dark, self.i0, self.shape, self.name, self.energies.tobytes(),
                self.read_energies.tobytes())


def stack_source(stack) -> StackSource:
    """Describe a stack opened with :func:`~xafsmap.core.io.stack.read_stack` by its files.

    The stack may have been prepared with :func:`~xafsmap.core.prepare.steps.prepare_stack`
    (drift, shift map, region of interest, binning, in one call or several): the
    steps recorded on it travel along, and a worker redoes them after reading.

    Parameters
    ----------
    stack : xafsmap.core.io.stack.Stack

    Returns
    -------
    StackSource

    Raises
    ------
    ValueError
        If the stack, or its flat, dark or i0, was given as an in-memory array (a
        worker on another machine cannot read it), or if the stack was changed after
        reading in any other way than ``prepare_stack`` (sliced, scaled, replaced):
        its lazy graph differs from the one ``read_stack`` and the recorded
        ``prepare_stack`` steps build from the files, which is what workers would map.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from xafsmap.core.io.stack import read_stack, write_stack
    >>> from xafsmap.core.prepare.steps import prepare_stack
    >>> f = write_stack(pathlib.Path(tempfile.mkdtemp()) / "s.tif",
    ...                 np.ones((3, 4, 6), np.float32), [7100.0, 7110.0, 7120.0])
    >>> stack_source(read_stack(f)).shape
    (3, 4, 6)
    >>> stack_source(prepare_stack(read_stack(f), roi=(0, 4, 2, 6), factor=2)[0]).shape
    (3, 2, 2)
    """
    sources = stack.sources
    path = sources.get("stack")
    given = {role: sources.get(role) for role in _ROLES}
    arrays = [role for role in ("stack", *_ROLES) if sources.get(role) == "<array>"]
    if path is None or arrays:
        arrays = arrays or ["stack"]
        raise ValueError(
            f"the {', '.join(arrays)} of this stack {'was' if len(arrays) == 1 else 'were'} given as an array: "
            "a distributed run needs files that workers can open (read_stack(path, flat=path, ...))"
        )
    steps = tuple(getattr(stack, "preparation", ()))
    name = getattr(stack.data, "name", None)
    source = StackSource(path=str(path), energies=np.asarray(stack.energies, dtype=np.float64),
                         shape=tuple(int(n) for n in stack.data.shape), name=str(name),
                         read_energies=np.asarray(steps[0].energies if steps else stack.energies, dtype=np.float64),
                         preparation=steps, **given)
    if name is None or _reopen(source).data.name != name:
        redo = f" and its {len(steps)} recorded prepare_stack step{'s' * (len(steps) != 1)}" if steps else ""
        raise ValueError(
            f"this stack {source.shape} is not what read_stack gives from its files{redo}: it was changed "
            "after reading in another way (sliced, scaled, replaced), which workers cannot redo; prepare it "
            "with xafsmap.core.prepare.steps.prepare_stack (drift, shift, roi, factor) or map it without a cluster"
        )
    return source


def _reopen(source: StackSource, *, band: int | None = None):
    """Read the stack's files and redo its preparation (lazily; no pixel is read).

    With ``band`` (rows of the prepared stack per task) the raw rows are chunked so
    that each band of the prepared stack is built from exactly the raw rows it needs:
    then computing one band reads only those (see :func:`_raw_edges`).
    """
    from ..io.stack import read_stack
    from ..prepare.steps import prepare_stack

    stack = read_stack(source.path, energies=source.read_energies, flat=source.flat, dark=source.dark,
                       i0=source.i0)
    if band is not None and source.preparation:
        edges = _raw_edges(source.preparation, source.shape[1], band, stack.data.shape[1])
        stack = replace(stack, data=stack.data.rechunk({1: tuple(np.diff(edges).tolist())}))
    for step in source.preparation:
        stack, _ = prepare_stack(stack, drift=step.drift, shift=step.shift, roi=step.roi, factor=step.factor)
    return stack


def _raw_edges(steps, rows: int, band: int, raw_rows: int) -> np.ndarray:
    """Raw row boundaries of the bands ``[0, band), [band, 2 band), ...`` of the prepared stack.

    Each step maps a row boundary of its output back to its input: binning by f
    multiplies it by f, a region of interest adds its first row; drift and shift keep
    rows. Raw chunks cut at these boundaries line up with the bands through every
    step (binning rechunks to its largest chunk, which is then one band).
    """
    edges = np.append(np.arange(0, rows, band), rows).astype(np.int64)
    for step in reversed(steps):
        edges = edges * int(step.factor) + (int(step.roi[0]) if step.roi is not None else 0)
    return np.unique(np.clip(np.concatenate([[0], edges, [raw_rows]]), 0, raw_rows))


_OPENED: dict = {}


def _open(source: StackSource, band: int | None = None):
    """The stack behind ``source``, opened (and prepared) once per worker process."""
    key = (source.key(), band)
    stack = _OPENED.get(key)
    if stack is None:
        stack = _reopen(source, band=band)
        if tuple(stack.data.shape) != source.shape or not np.array_equal(stack.energies, source.energies):
            raise ValueError(
                f"worker on {os.uname().nodename} builds {source.path} as shape {tuple(stack.data.shape)} with "
                f"{stack.energies.size} energies, the client as {source.shape}: is it the same file there?"
            )
        _OPENED.clear()  # one stack at a time: keep the worker's memory flat
        _OPENED[key] = stack
    return stack


def map_band_from_file(source: StackSource, r0: int, r1: int, model: Model, *, metric: str,
                       thick: float | None = None, band: int | None = None) -> dict:
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

    Returns
    -------
    dict of str to ndarray
        The band's maps, (r1 - r0, N) each, ``fractions`` (K, r1 - r0, N).
    """
    import dask
    from joblib import parallel_config

    stack = _open(source, band)
    data = dask.compute(stack.data[:, r0:r1], scheduler="synchronous")[0]
    maps = new_maps(model.classifier.references.shape[0], r1 - r0, source.shape[2])
    # worker processes are daemons: joblib's process pool is not allowed there, threads are
    with parallel_config(backend="threading"):
        _map_band(np.asarray(data, dtype=np.float32), stack.energies, 0, r1 - r0, maps, model=model,
                  metric=metric, thick=thick, origin=r0)
    return maps


def iter_map_distributed(stack, model: Model, *, client, metric: str = "euclidean",
                         band_bytes: int = BAND_BYTES, thick: float | None = None):
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

    Yields
    ------
    (done, total) : tuple of int
        Bands finished (in any order) out of all bands.

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
    [shared, where] = client.scatter([model, source], broadcast=True, hash=False)
    futures = {
        client.submit(map_band_from_file, where, r0, r1, shared, metric=metric, thick=thick, band=band,
                      pure=False, key=f"xafsmap-band-{r0}-{r1}-{os.getpid()}-{time.time_ns()}"): (r0, r1)
        for r0, r1 in bands
    }
    try:
        for done, future in enumerate(as_completed(futures), start=1):
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


def map_distributed(stack, model: Model, *, client, **options) -> MapResult:
    """Run :func:`iter_map_distributed` to the end and return its :class:`MapResult`."""
    generator = iter_map_distributed(stack, model, client=client, **options)
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def _train_from_file(source: StackSource, references, options: dict) -> Model:
    from ..model.training import train_model

    return train_model(_open(source), references, **options)


def train_model_distributed(stack, references, *, client, **options) -> Model:
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
                timeout: float | None = None):
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
