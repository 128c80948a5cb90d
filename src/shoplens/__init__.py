"""shoplens: e-commerce product classification and visual search."""

__version__ = "0.1.0"


class ShoplensError(Exception):
    """A user mistake (bad input, missing file, wrong option): reported as one line, never a traceback."""
