"""Figures of a processed catalog: class imbalance per level and title lengths."""
import pandas as pd
from matplotlib.figure import Figure

from shoplens.outputs import atomic_path


def plot_class_imbalance(table, levels, path=None, top=30):
    """Items per class for each level, largest first, on a log scale.

    Parameters
    ----------
    table : pandas.DataFrame
        Processed rows with one column per level.
    levels : list of str
        The level columns, top level first.
    path : str or Path, optional
        Where to save the figure (PNG).
    top : int
        Classes shown per level; the rest are summarised in the title.
    """
    # Figure, not pyplot: no global state, so long-running processes don't accumulate figures.
    fig = Figure(figsize=(5 * len(levels), 0.25 * min(top, 40) + 2))
    axes = fig.subplots(1, len(levels), squeeze=False)
    for ax, level in zip(axes[0], levels):
        counts = table[level].value_counts()
        shown = counts.head(top)[::-1]
        ax.barh(shown.index, shown.values, color="tab:blue")
        ax.set_xscale("log")
        ratio = counts.iloc[0] / counts.iloc[-1]
        hidden = f", {len(counts) - len(shown)} more" if len(counts) > len(shown) else ""
        ax.set_title(f"{level}\n{len(counts)} classes{hidden}; largest/smallest = {ratio:.0f}x", fontsize=10)
        ax.set_xlabel("items (log scale)")
        ax.tick_params(axis="y", labelsize=8)
    fig.suptitle("Class imbalance per level")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_title_lengths(table, level, path=None):
    """Words per title before and after cleaning, per class of ``level``.

    ``table`` needs the raw ``title`` and the ``clean_title`` columns.
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
    ax.set_title(f"Title length per {level}, before and after cleaning")
    ax.legend()
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path):
    """Write a figure as PNG, atomically, if a path is given; return the figure."""
    if path is not None:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    return fig
