"""Progress of long work: a bar on a terminal, a plain line every few seconds in a log.

A progress bar redraws itself with carriage returns, which a log file (``make demo > log``)
keeps as one line of many kilobytes. Where the output is no terminal, the progress is
written instead as a line every :data:`LOG_INTERVAL` seconds, such as
``extracting features: 640/1,400 items, 12 s``; work done sooner writes none.
"""
import sys
import time

from tqdm import tqdm

# Seconds between two progress lines written where the output is no terminal.
LOG_INTERVAL = 10.0


def is_terminal(stream):
    """Whether ``stream`` is an interactive terminal."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or closed
        return False


def progress_bar(iterable=None, total=None, desc="", unit="item", progress=True, file=None):
    """A progress display for ``total`` steps (or over ``iterable``), used as tqdm's bars are.

    A tqdm bar on a terminal (``file``, standard error by default); a :class:`ProgressLines`
    elsewhere; nothing when ``progress`` is false. ``unit`` names one step, as in tqdm.
    """
    file = file or sys.stderr
    if not progress:
        return tqdm(iterable, total=total, disable=True)
    if is_terminal(file):
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=False, file=file)
    return ProgressLines(iterable, total=total, desc=desc, unit=unit, file=file)


def progress_line(desc, done, total, unit, seconds):
    """``desc: done/total units, seconds s``, the line a log gets every :data:`LOG_INTERVAL` seconds."""
    return f"{desc}: {done:,}/{total:,} {unit}s, {seconds:.0f} s"


class ProgressLines:
    """The part of tqdm's interface this project uses, writing a plain progress line at most every
    ``interval`` seconds (:data:`LOG_INTERVAL` by default) until the work is done."""

    def __init__(self, iterable=None, total=None, desc="", unit="item", file=None, interval=None):
        self.iterable, self.desc, self.unit = iterable, desc, unit
        self.total = len(iterable) if total is None and iterable is not None else total
        self.file = file or sys.stderr
        self.interval = LOG_INTERVAL if interval is None else interval
        self.n = 0
        self.started = self.last = time.monotonic()

    def update(self, n=1):
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval and (self.total is None or self.n < self.total):
            self.last = now
            total = self.total if self.total is not None else self.n
            print(progress_line(self.desc, self.n, total, self.unit, now - self.started), file=self.file, flush=True)

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update()

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
