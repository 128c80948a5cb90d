"""Figures of a processed catalog: class imbalance per level and title lengths."""
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from shoplens.outputs import atomic_path


def plot_class_imbalance(table, levels, path=None, top=30, name=None):
    """Items per class for each level on a log scale, largest first: every class, or of more than ``top``,
    the largest and the smallest ones (the classes a model learns worst), with how many lie between.

    Parameters
    ----------
    table : pandas.DataFrame
        Processed rows with one column per level.
    levels : list of str
        The level columns, top level first.
    path : str or Path, optional
        Where to save the figure (PNG).
    top : int
        Classes shown per level at most: half of them the largest, half the smallest.
    name : str, optional
        The catalog, for the title.
    """
    # Figure, not pyplot: no global state, so long-running processes don't accumulate figures.
    rows = min(top + 1, max(table[level].nunique() for level in levels))
    fig = Figure(figsize=(5 * len(levels), 0.25 * rows + 2))
    axes = fig.subplots(1, len(levels), squeeze=False)
    for ax, level in zip(axes[0], levels):
        counts = table[level].value_counts()
        if len(counts) > top:
            largest, smallest = counts.head(top - top // 2), counts.tail(top // 2)
            hidden = len(counts) - len(largest) - len(smallest)
            labels = [*largest.index, f"... {hidden} classes between ...", *smallest.index]
            values = [*largest.values, np.nan, *smallest.values]
        else:
            labels, values = list(counts.index), list(counts.values)
        positions = np.arange(len(labels))[::-1]  # the largest on top
        ax.barh(positions, values, color="tab:blue")
        for y, n in zip(positions, values):
            if not np.isnan(n):
                ax.text(n, y, f" {n:,.0f}", va="center", fontsize=7)
        ax.set_yticks(positions, labels, fontsize=8)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.set_xscale("log")
        ax.set_xlim(0.7, counts.iloc[0] * 3)  # bars from below one item; room for the largest class's count
        ratio = counts.iloc[0] / counts.iloc[-1]
        shown = f"\nthe {len(largest)} largest and the {len(smallest)} smallest shown" if len(counts) > top else ""
        ax.set_title(f"{level}\n{len(counts)} classes; largest/smallest = {ratio:.0f}x{shown}", fontsize=10)
        ax.set_xlabel("items (log scale)")
    fig.suptitle(f"Class imbalance per level{f' of {name}' if name else ''}")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_title_lengths(table, level, path=None, name=None):
    """Words per title before and after cleaning, per class of ``level``.

    ``table`` needs the raw ``title`` and the ``clean_title`` columns; ``name`` (the catalog) goes into the title.
    """
    lengths = pd.DataFrame({
        level: table[level],
        "raw": table["title"].str.split().str.len(),
        "cleaned": table["clean_title"].str.split().str.len(),
    })
    classes = sorted(lengths[level].unique())
    fig = Figure(figsize=(max(6, 1.6 * len(classes)), 4))
    ax = fig.subplots()
    positions = range(len(classes))
    for offset, column, colour in ((-0.2, "raw", "tab:grey"), (0.2, "cleaned", "tab:blue")):
        groups = [lengths.loc[lengths[level] == c, column] for c in classes]
        box = ax.boxplot(groups, positions=[p + offset for p in positions], widths=0.35, patch_artist=True,
                         showfliers=False)
        for patch in box["boxes"]:
            patch.set_facecolor(colour)
        ax.plot([], [], color=colour, linewidth=8, label=f"{column} title")
    ax.set_xticks(list(positions), classes, rotation=20, ha="right")
    ax.set_ylabel("words per title")
    ax.set_title(f"Title length per {level}{f' of {name}' if name else ''}, before and after cleaning")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path):
    """Write a figure as PNG, atomically, if a path is given; return the figure.

    The page grows to hold every label, so captions below a panel are never cut off."""
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight", pad_inches=0.15)
    return fig
