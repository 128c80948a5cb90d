"""Writing artifacts so that a failed run never leaves a half-written one behind."""
import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path


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
def staged_dir(directory):
    """Yield an empty staging folder; on success move each file in it into ``directory``.

    A stage that writes several files (the three splits and their summary) stages
    them all first, so a failure half-way leaves the previous outputs untouched.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".staging-"))
    try:
        yield staging
        for item in sorted(staging.iterdir()):
            os.replace(item, directory / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(data, path):
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
