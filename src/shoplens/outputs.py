"""Writing artifacts so that a failed or killed run never leaves a half-written one behind.

A single file is written to a temporary name and renamed (:func:`atomic_path`).
A stage that writes several files publishes them as one folder
(:func:`publish`): the stage's folder, e.g. ``data/processed/splits``, is a
symbolic link to a version folder beside it (``.splits.v-k3j9x0ab``), and publishing
points it at a new one with a single rename. A reader sees the old outputs or
the new ones, whenever the writer dies; ``stage.json`` in the folder says which
options and inputs made them (:mod:`shoplens.stages`).
"""
import contextlib
import errno
import json
import os
import re
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from shoplens import ShoplensError

STAGE_FILE = "stage.json"


@contextlib.contextmanager
def atomic_path(path, suffix=".tmp"):
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    ``suffix`` ends the temporary name, for writers that insist on one (Keras: ``.keras``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the artifact should not be
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def publish(directory, stage, key, version):
    """Yield an empty staging folder; if the block succeeds, it becomes ``directory`` in one rename.

    ``stage.json`` (the ``stage`` name, its ``key`` and ``version``) is written into the
    folder last. The previous version folder, and any left by killed runs, are removed.
    Callers hold the project lock (:func:`shoplens.stages.project_lock`), so no other
    writer is publishing the same folder.
    """
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(directory)
    staging = Path(tempfile.mkdtemp(dir=directory.parent, prefix=_version_prefix(directory)))
    try:
        yield staging
        write_json({"stage": stage, "version": version, "created": datetime.now().isoformat(timespec="seconds"),
                    "key": key}, staging / STAGE_FILE)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp makes it private
        _sync_folder(staging)
        old = version_folder(directory)
        if directory.is_dir() and not directory.is_symlink():
            old = _move_aside(directory)  # a folder from before stages were published as links
        link = staging.with_name(staging.name + ".link")
        os.symlink(staging.name, link)
        os.replace(link, directory)
        _fsync(directory.parent)
        staging = None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def version_folder(directory):
    """The version folder ``directory`` links to, or ``None``."""
    directory = Path(directory)
    if not directory.is_symlink():
        return None
    return directory.parent / os.readlink(directory)


def remove_leftovers(directory):
    """Remove version folders of ``directory`` that it does not link to: staging left by killed runs."""
    directory = Path(directory)
    if not directory.parent.is_dir():
        return
    current = version_folder(directory)
    # Matched exactly: the folders of "embeddings" must not take those of "embeddings-1-of-3" along.
    pattern = re.compile(re.escape(_version_prefix(directory)) + r"[a-z0-9_]{8}(\.link)?")
    for path in directory.parent.iterdir():
        if pattern.fullmatch(path.name) and (current is None or path.name != current.name):
            if path.is_symlink() or path.is_file():
                path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)


def read_stage(directory):
    """The ``stage.json`` of a published folder, or ``None`` if there is none (or it is unreadable)."""
    try:
        return json.loads((Path(directory) / STAGE_FILE).read_text())
    except (OSError, ValueError):
        return None


def write_json(data, path):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def check_free_space(folder, needed_bytes, what):
    """Refuse to start writing ``needed_bytes`` into ``folder`` if the disk has less free."""
    folder = Path(folder)
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise ShoplensError(f"{folder}: {what} needs {_size(needed_bytes)} free, the disk has {_size(free)}; "
                            "free some space or write the project elsewhere")


def disk_full_message(err, folder):
    """A one-line message for an ``OSError`` that is a full disk (or quota), else ``None``."""
    if err.errno not in (errno.ENOSPC, errno.EDQUOT):
        return None
    free = _size(shutil.disk_usage(folder).free) if Path(folder).exists() else "no space"
    return (f"{folder}: disk full while writing it ({free} left, nothing published); free some space and run "
            "the same command again")


def _size(n):
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return str(n)


def _version_prefix(directory):
    return f".{Path(directory).name}.v-"


def _move_aside(directory):
    aside = Path(tempfile.mkdtemp(dir=directory.parent, prefix=_version_prefix(directory)))
    os.rename(directory, aside)  # onto the empty folder just made
    return aside


def _sync_folder(folder):
    """Flush every file of ``folder`` to disk, so a machine crash cannot publish empty files."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(root)


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder
    finally:
        os.close(fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
