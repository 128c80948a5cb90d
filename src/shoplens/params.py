"""The options a project runs with, remembered in ``params.yaml`` at its root (as DVC keeps them).

An option given once, as a Make variable (``make data CATALOG=shop.csv``) or as an
option of a ``shoplens`` command (``--catalog shop.csv``), is written here when
the command that uses it succeeds, and holds for every later command until it is
given again. Options not in the file take their defaults from
:mod:`shoplens.config`. The file is small and meant to be read, edited and
versioned::

    # shoplens options of this project ...
    CATALOG: ../shared/datasets/fashion-products
    EPOCHS: 30

The Makefile passes the names of the variables given on its command line in
``SHOPLENS_GIVEN``, and Make exports their values to the commands it runs.
"""
import os

import yaml

from shoplens import ShoplensError, config
from shoplens.outputs import atomic_path

HEADER = """\
# shoplens options of this project: written when a command given them succeeds, read by every command.
# Options not listed take their defaults from src/shoplens/config.py; `make params` shows them all.
# Edit this file, or give NAME=value to any make target (or `make params NAME=value`).
"""

# Variables of the Makefile itself, not options of a command.
MAKE_VARIABLES = {"PYTHON", "VENV"}


def load(path=None):
    """The remembered options, ``{NAME: value}``; empty if the project has no ``params.yaml``."""
    path = path or config.PARAMS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as err:
        raise ShoplensError(f"{path}: cannot read ({err.strerror})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ShoplensError(f"{path}: not valid YAML{where}; fix it or delete it to start from the defaults") \
            from None
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise ShoplensError(f"{path}: expected lines of NAME: value, such as `CATALOG: shop.csv`")
    return {name: "" if value is None else value for name, value in values.items()}


def save(updates, order=(), path=None):
    """Write ``updates`` into the remembered options, atomically; ``order`` lists names in the order to write."""
    path = path or config.PARAMS_FILE
    values = {**load(path), **updates}
    rank = {name: i for i, name in enumerate(order)}
    ordered = dict(sorted(values.items(), key=lambda item: (rank.get(item[0], len(rank)), item[0])))
    with atomic_path(path) as tmp:
        tmp.write_text(HEADER + yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True, width=1000),
                       encoding="utf-8")


def given():
    """The variables given on the make command line that ran this command: ``{NAME: value}``."""
    names = os.environ.get("SHOPLENS_GIVEN", "").split()
    return {name: os.environ.get(name, "") for name in names if name not in MAKE_VARIABLES}
