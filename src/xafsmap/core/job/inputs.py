"""The sha256 of a job's input files, for report.json, read beside the job.

Hashing gigabytes takes seconds; :func:`hashing_inputs` runs it in a thread while the
job trains and maps (the disk is read sequentially at its own speed while training
leaves a core idle), and stops it at once when the job ends in an error, so an error
exit never waits for the hash of a huge input.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..io.references import split_spec
from ..io.stack import Stack
from ..mapping.output import file_sha256

__all__ = ["hash_inputs", "hashing_inputs"]


def hash_inputs(stack: Stack, reference_specs: Iterable[str], *, stop: threading.Event | None = None,
                moved: tuple[Path, Path] | None = None) -> dict:
    """sha256 of every file of a stack (``stack.sources``) and of its references.

    Parameters
    ----------
    stack : Stack
        Its ``sources`` name the files (a folder or glob: each file in it).
    reference_specs : sequence of str
        ``FILE`` or ``FILE:NAME``.
    stop : threading.Event, optional
        Once set, hashing ends (the remaining hashes are None).
    moved : (Path, Path), optional
        ``(tmp, out)``: files inside a temporary output folder are recorded at their
        final place.

    Returns
    -------
    dict
        Per role ``{"path": ..., "sha256": {file name: hex digest}}``, and
        ``"references"``: ``[{"spec": ..., "sha256": ...}, ...]``.
    """
    inputs = {}
    for role, path in stack.sources.items():
        path = Path(path)
        files = sorted(path.parent.glob(path.name) if "*" in path.name else
                       path.iterdir() if path.is_dir() else [path])
        shown = str(path) if moved is None else str(path).replace(str(moved[0]), str(moved[1]))
        inputs[role] = {"path": shown, "sha256": {f.name: file_sha256(f, stop=stop) for f in files if f.is_file()}}
    inputs["references"] = [{"spec": spec, "sha256": file_sha256(split_spec(spec)[0], stop=stop)}
                            for spec in reference_specs]
    return inputs


@contextlib.contextmanager
def hashing_inputs(stack: Stack, reference_specs: Iterable[str], *,
                   moved: tuple[Path, Path] | None = None) -> Iterator[Future]:
    """Yield a :class:`~concurrent.futures.Future` of :func:`hash_inputs`, computed in a thread.

    Leaving the block (by an error too) stops the hashing without waiting for it.
    """
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=1)
    future: Future = pool.submit(hash_inputs, stack, list(reference_specs), stop=stop, moved=moved)
    try:
        yield future
    finally:
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
