"""Mapping a function over many items on every core, in order, with a progress bar."""
import multiprocessing
import os

from shoplens import config
from shoplens.progress import progress_bar


def imap(fn, items, desc, workers=config.WORKERS, progress=True, chunksize=64):
    """Yield ``fn(item)`` for each item, in order, from ``workers`` processes.

    ``fn`` must be a module-level function. Workers are spawned, not forked, so a
    parent that has started threads (pyarrow, TensorFlow) cannot deadlock them.
    """
    workers = workers or os.cpu_count() or 1
    bar = progress_bar(total=len(items), desc=desc, progress=progress)
    with bar:
        if workers == 1 or len(items) < 4 * chunksize:
            for item in items:
                yield fn(item)
                bar.update()
            return
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap(fn, items, chunksize=chunksize):
                yield result
                bar.update()
