"""Output folders: the one rule for what xafsmap may create, fill and replace.

Every command writes its result into a hidden temporary folder beside ``out``
(``.NAME.partial-*``) and renames it into place only when complete
(:func:`atomic_folder`). Each folder xafsmap writes carries a marker file
(:data:`MARKER`) with the run's identity and the list of what it wrote. The rule:

* ``out`` may be new or an empty folder; with ``overwrite`` it may also be a folder
  xafsmap wrote (marker present) that holds nothing xafsmap did not write;
* never the root, the current folder, the home folder or an input, nor a folder that
  holds one of them (checked on the resolved paths, so ``.``, ``..`` and links count);
* the check is made when the job starts (:func:`claim_output`, before any work) and again
  at the moment of replacement, under a lock beside ``out``, so a folder created or
  filled while the job ran is never replaced;
* a replacement renames the old result to ``.NAME.old-*`` (still marked as ours), the
  new one into place, then deletes the old: a kill in between leaves the old result
  whole, and the next job on ``out`` puts it back. That job also deletes the partial
  and old folders that interrupted jobs of ours left (they are recognised by their
  marker, and a running job's by the lock it holds on its marker), and says so through
  the ``xafsmap`` logger.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; see _locked and _in_use
    fcntl = None

__all__ = ["MARKER", "atomic_folder", "claim_output", "input_paths", "recover_output"]

#: Marker file inside every folder xafsmap writes: the run's identity and what it wrote.
MARKER = ".xafsmap-output.json"
#: Seconds to wait for another job's replacement of the same folder to finish.
LOCK_SECONDS = 60.0
#: Without advisory locks, a partial folder this old (s) is taken as abandoned.
STALE_SECONDS = 24 * 3600

log = logging.getLogger("xafsmap")


def input_paths(*specs: str | os.PathLike) -> list[Path]:
    """The files or folders named by input specs: paths, globs, ``FILE:NAME`` references.

    A glob stands for the folder part before its first wildcard; ``None`` is skipped.

    >>> [p.name for p in input_paths("scan/*.tif", None, "refs/Fe.xdi")]
    ['scan', 'Fe.xdi']
    """
    paths = []
    for spec in specs:
        if spec is None:
            continue
        text = os.fspath(spec)
        path = Path(text).expanduser()
        if not path.exists() and any(c in text for c in "*?["):
            parts = []
            for part in path.parts:
                if any(c in part for c in "*?["):
                    break
                parts.append(part)
            path = Path(*parts) if parts else Path(".")
        elif not path.exists() and ":" in text:
            head = text
            while ":" in head and not Path(head).exists():
                head = head.rpartition(":")[0]
            path = Path(head or text).expanduser()
        paths.append(path)
    return paths


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def _check_place(out: Path, sources) -> None:
    """Refuse an ``out`` that is or holds the root, the current or home folder, or an input."""
    target = _resolved(out)
    if target.parent == target:
        raise ValueError(f"output folder {out} is the root of the file system; choose a new folder")
    protected = [(_resolved(Path.cwd()), "the current folder"), (_resolved(Path.home()), "your home folder")]
    protected += [(_resolved(p), f"the input {p}") for p in input_paths(*sources)]
    for path, what in protected:
        if path == target or target in path.parents:
            holds = "is" if path == target else "holds"
            raise ValueError(f"output folder {out} {holds} {what}; xafsmap never replaces it: choose a new folder")


def _entries(folder: Path) -> set[str]:
    """Every file and folder under ``folder``, as relative POSIX paths (the marker excluded)."""
    found = set()
    for root, dirs, files in os.walk(folder):
        base = Path(root).relative_to(folder)
        found.update((base / name).as_posix() for name in (*dirs, *files))
    found.discard(MARKER)
    return found


def _read_marker(folder: Path) -> dict | None:
    try:
        data = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("xafsmap_output") == 1 else None


def _check_replaceable(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` that is not an empty folder or, with ``overwrite``, ours alone."""
    if out.is_symlink():
        raise ValueError(f"output {out} is a symbolic link; give a new folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise ValueError(f"output {out} exists and is a file, not a folder")
    if not any(out.iterdir()):
        return
    if not overwrite:
        raise ValueError(f"output folder {out} exists and is not empty; choose another or pass --overwrite")
    marker = _read_marker(out)
    if marker is None or marker.get("state") != "complete":
        raise ValueError(f"output folder {out} was not written by xafsmap (no {MARKER} in it); --overwrite "
                         "replaces only folders xafsmap wrote: choose a new folder")
    foreign = sorted(_entries(out) - set(marker.get("entries", ())))
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise ValueError(f"output folder {out} holds {foreign[0]}{more}, which xafsmap did not write; --overwrite "
                         "replaces only what xafsmap wrote: move it away or choose a new folder")


@contextlib.contextmanager
def _locked(out: Path):
    """Hold the lock of ``out`` (the file ``.NAME.lock`` beside it, removed on release)."""
    path = out.parent / f".{out.name}.lock"
    deadline = time.monotonic() + LOCK_SECONDS
    while (fd := _acquire(path)) is None:
        if time.monotonic() > deadline:
            raise ValueError(f"another xafsmap job is replacing {out} (it holds {path}); try again when it is done")
        time.sleep(0.05)
    try:
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _acquire(path: Path) -> int | None:
    """A descriptor holding the lock file ``path``, or None while another job holds it."""
    if fcntl is None:  # no advisory locks: the file's existence is the lock; a minute-old one is abandoned
        with contextlib.suppress(FileNotFoundError):
            if time.time() - path.stat().st_mtime > LOCK_SECONDS:
                path.unlink()
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if _flock(fd) and os.fstat(fd).st_ino == os.stat(path).st_ino:  # not removed by the holder we waited for
            return fd
    except FileNotFoundError:
        pass
    os.close(fd)
    return None


def _flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _in_use(folder: Path) -> bool:
    """Does a running job own this partial folder? (It holds a lock on its marker.)"""
    if fcntl is None:
        with contextlib.suppress(OSError):
            return time.time() - (folder / MARKER).stat().st_mtime < STALE_SECONDS
        return False
    try:
        fd = os.open(folder / MARKER, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        return not _flock(fd)
    finally:
        os.close(fd)


def _remove(folder: Path) -> None:
    """Delete a folder of ours, its marker last: a deletion cut short stays recognisable."""
    for entry in folder.iterdir():
        if entry.name == MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    (folder / MARKER).unlink(missing_ok=True)
    folder.rmdir()


def recover_output(out: str | os.PathLike) -> list[str]:
    """Repair what interrupted jobs left beside ``out``; return what was done, one line each.

    Call under the lock of ``out`` (:func:`claim_output` and :func:`atomic_folder` do).
    A missing ``out`` with a complete ``.NAME.old-*`` beside it (a job killed between
    its two renames) gets that old result back; other old folders of ours (when ``out``
    is ours) and partial folders of ours that no running job holds are deleted. Folders without our marker
    are never touched (an empty ``.NAME.partial-*`` left by a kill before its marker
    was written is removed: it holds nothing).

    Returns
    -------
    list of str
        Notes for the user (also logged on the ``xafsmap`` logger).
    """
    out = Path(out).absolute()
    notes = []
    if not out.parent.is_dir():
        return notes
    olds = sorted(out.parent.glob(f".{out.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    olds = [p for p in olds if p.is_dir() and not p.is_symlink() and (_read_marker(p) or {}).get("state") == "complete"]
    if olds and not out.exists() and not out.is_symlink():
        os.rename(olds[0], out)
        notes.append(f"put back the previous result in {out} from {olds[0].name} (a job was stopped while "
                     "replacing it)")
        olds = olds[1:]
    if (_read_marker(out) or {}).get("state") != "complete":
        olds = []  # out is someone else's now: the old results stay where they are
    for old in olds:
        _remove(old)
        notes.append(f"removed {old.name}, the previous result of {out.name} that an interrupted job left")
    for partial in sorted(out.parent.glob(f".{out.name}.partial-*")):
        if not partial.is_dir() or partial.is_symlink() or _in_use(partial):
            continue
        if _read_marker(partial) is not None:
            _remove(partial)
            notes.append(f"removed {partial.name}, the unfinished output of an interrupted job")
        elif not any(partial.iterdir()):
            partial.rmdir()
    for note in notes:
        log.warning(note)
    return notes


def claim_output(out: str | os.PathLike, *, sources: Sequence[str | os.PathLike] = (), overwrite: bool = False) -> Path:
    """Check, before any work, that a job may write its result to ``out``.

    Parameters
    ----------
    out : str or Path
        The output folder.
    sources : sequence of str or Path
        The job's inputs (files, folders, globs, ``FILE:NAME`` specs): ``out`` may not be
        one of them or hold one.
    overwrite : bool
        Allow replacing a folder xafsmap wrote (see the module docstring for the rule).

    Returns
    -------
    Path
        ``out``, absolute.

    Raises
    ------
    ValueError
        Naming why ``out`` may not receive the result.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "notes.txt").write_text("mine")
    >>> claim_output(d, overwrite=True)
    Traceback (most recent call last):
    ValueError: output folder ... was not written by xafsmap (no .xafsmap-output.json in it); ...
    """
    out = Path(out).expanduser().absolute()
    _check_place(out, sources)
    if out.parent.is_dir():
        with _locked(out):
            recover_output(out)
            _check_replaceable(out, overwrite)
    return out


def _new_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing


def _write_marker(fd: int, data: dict) -> None:
    text = json.dumps(data, indent=1).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text, 0)
    os.fsync(fd)


@contextlib.contextmanager
def atomic_folder(out: str | os.PathLike, *, sources: Sequence[str | os.PathLike] = (),
                  overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder that replaces ``out`` only if the block succeeds.

    The rule of the module docstring is checked on entry (:func:`claim_output`) and
    again, under the lock, at the moment of replacement. On failure or interruption the
    temporary folder is removed and ``out`` stays as it was. An ``OSError`` without a
    file name (a full disk) is raised again naming ``out``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "maps"
    >>> with atomic_folder(out) as tmp:
    ...     _ = (tmp / "a.txt").write_text("1")
    >>> sorted(p.name for p in out.iterdir())
    ['.xafsmap-output.json', 'a.txt']
    """
    out = claim_output(out, sources=sources, overwrite=overwrite)
    created = _new_parents(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    fd = os.open(tmp / MARKER, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is not None:
        fcntl.flock(fd, fcntl.LOCK_EX)  # while held, no other job takes this folder for abandoned
    marker = {"xafsmap_output": 1, "state": "partial", "run": run, "host": platform.node(), "pid": os.getpid(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    try:
        _write_marker(fd, marker)
        try:
            yield tmp
        except OSError as error:
            raise _named(error, tmp, out) from error
        _write_marker(fd, {**marker, "state": "complete", "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                           "entries": sorted(_entries(tmp))})
        with _locked(out):
            _check_place(out, sources)
            recover_output(out)
            _check_replaceable(out, overwrite)
            _replace(tmp, out, run)
    except BaseException:
        if tmp.exists():
            with contextlib.suppress(OSError):
                _remove(tmp)
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        os.close(fd)


def _named(error: OSError, tmp: Path, out: Path) -> OSError:
    """The error naming the output the user gave, not the temporary folder (and, for a short
    write that says nothing else, what it likely means)."""
    name = os.fspath(error.filename) if error.filename is not None else None
    if name is not None and not name.startswith(str(tmp)):
        return error
    shown = str(out) if name is None else str(out) + name[len(str(tmp)):]
    what = error.strerror or f"writing failed ({error}; is the disk full?)"
    return OSError(error.errno, what, shown)


def _replace(tmp: Path, out: Path, run: str) -> None:
    """Put ``tmp`` in the place of ``out`` (absent, empty, or ours): old aside, new in, old away."""
    if not out.exists() or not any(out.iterdir()):
        os.replace(tmp, out)  # onto nothing or an empty folder: one atomic rename
        return
    old = out.parent / f".{out.name}.old-{run}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    _remove(old)
