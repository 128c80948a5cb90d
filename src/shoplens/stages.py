"""When a stage runs: exactly when its options, inputs or code changed (the way DVC decides).

Each stage describes what its outputs depend on as a *key*::

    {"options": {"MIN_ITEMS": 10, ...},        # the options that change its outputs
     "inputs": {"catalog.csv": "...", ...},    # fingerprints of files and folders it reads
     "upstream": {"data": "3f2a9c01b7e4"},     # versions of the stages it reads
     "code": "9b1c..."}                        # a hash of its source files

and publishes it in ``stage.json`` with its outputs (:func:`shoplens.outputs.publish`).
:func:`run_stage` compares the key of the options now in force with the published
one and runs the stage only if they differ, saying why. One writer works on a
project at a time (:func:`project_lock`).
"""
import contextlib
import fcntl
import hashlib
import json
import os
import sys
from pathlib import Path

from shoplens import ShoplensError, config
from shoplens.outputs import disk_full_message, read_stage

PACKAGE_DIR = Path(__file__).resolve().parent


def code_version(*patterns):
    """A hash of the package's files matching ``patterns`` (relative globs such as ``data/*.py``)."""
    digest = hashlib.sha1()
    for pattern in patterns:
        for path in sorted(PACKAGE_DIR.glob(pattern)):
            digest.update(path.relative_to(PACKAGE_DIR).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def file_fingerprint(path):
    """Size and modification time of a file, as make would judge it."""
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def folder_fingerprint(path):
    """A hash of the name, size and modification time of every file under a folder."""
    digest = hashlib.sha1()
    root = str(path)
    for folder, subfolders, files in os.walk(root, followlinks=True):
        subfolders.sort()
        for name in sorted(files):
            try:
                stat = os.stat(os.path.join(folder, name))
            except OSError:
                continue
            digest.update(f"{os.path.relpath(os.path.join(folder, name), root)}\0{stat.st_size}\0"
                          f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def version_of(key):
    """The version id of outputs made from ``key``."""
    return hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def published_version(directory, target):
    """The version of the outputs published in ``directory``; a one-line error naming ``target`` if there are none."""
    record = read_stage(directory)
    if record is None:
        raise ShoplensError(f"{_rel(directory)}: not found; run `make {target}`")
    return record["version"]


def changes(old, new):
    """What differs between two keys, as short phrases (``MIN_ITEMS 10 -> 20``, ``data changed``)."""
    if old is None:
        return ["not made yet"]
    said = []
    old_options, new_options = old.get("options", {}), new.get("options", {})
    for name in new_options:
        if old_options.get(name) != new_options[name]:
            said.append(f"{name} {_short(old_options.get(name))} -> {_short(new_options[name])}")
    said += [f"{name} changed" for name in new.get("inputs", {}) if old.get("inputs", {}).get(name)
             != new["inputs"][name]]
    said += [f"{name} changed" for name in new.get("upstream", {}) if old.get("upstream", {}).get(name)
             != new["upstream"][name]]
    if old.get("code") != new.get("code"):
        said.append("its code changed")
    return said or ["its outputs were made differently"]


def run_stage(name, directory, key, build, force=False, echo=None):
    """Run ``build()`` under the project lock unless ``directory`` holds outputs made from ``key``.

    Returns ``build()``'s result, or ``None`` when the outputs were up to date. ``echo``
    (default: print to stdout) is told either way.
    """
    echo = echo or print
    with project_lock():
        record = read_stage(directory)
        if record is not None and record.get("key") == key and not force:
            echo(f"{name}: up to date ({_rel(directory)})")
            return None
        reasons = ["asked to"] if force and record and record.get("key") == key else changes(
            record and record.get("key"), key)
        echo(f"{name}: running ({'; '.join(reasons)})")
        try:
            return build()
        except OSError as err:
            message = disk_full_message(err, Path(err.filename).parent if err.filename else Path(directory).parent)
            if message is None:
                raise
            raise ShoplensError(message) from None


_held = {}


@contextlib.contextmanager
def project_lock(project_dir=None, what=None):
    """Hold the project's write lock; wait, saying for whom, while another command holds it.

    Re-entrant within a process. The lock is an ``flock`` on ``.shoplens/lock``: the
    operating system releases it when its holder dies, however it dies.
    """
    state = Path(project_dir) / config.STATE_DIR.name if project_dir else config.STATE_DIR
    path = str((state / "lock").absolute())
    if path in _held:
        _held[path][1] += 1
        try:
            yield
        finally:
            _held[path][1] -= 1
        return
    try:
        state.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise ShoplensError(f"{state}: cannot write the project ({err.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another command"
            print(f"waiting for {holder} to finish writing this project ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what or _command()} (pid {os.getpid()})".encode(), 0)
        _held[path] = [fd, 1]
        try:
            yield
        finally:
            del _held[path]
            os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the lock


def _command():
    return "shoplens " + " ".join(sys.argv[1:2]) if sys.argv and sys.argv[0].endswith(("shoplens", "cli.py")) \
        else "a shoplens command"


def _short(value, width=40):
    text = "unset" if value is None else str(value)
    return text if len(text) <= width else "..." + text[-(width - 3):]


def _rel(path):
    try:
        return Path(path).absolute().relative_to(Path.cwd())
    except ValueError:
        return Path(path)
