"""Figures of search results: each query beside the products it found."""
import logging
import textwrap

import numpy as np
from matplotlib.figure import Figure

from shoplens import config
from shoplens.data.images import load_image
from shoplens.visualization.dataset_figures import save_figure

THUMBNAIL = 128
log = logging.getLogger(__name__)


def plot_search_grid(rows, path=None, title=None):
    """One row per query: the query (a photo or a text) and then its results.

    Parameters
    ----------
    rows : list of dict
        Each with ``results`` (search results: ``image_path``, ``id``, ``category``,
        optionally ``score``) and the query as ``image`` (a path or an array), ``text``,
        or neither (a plain listing); ``caption`` is written under the query.
    path : str or Path, optional
        Where to save the figure (PNG).
    title : str, optional
        The figure's title.
    """
    columns = 1 + max([len(row["results"]) for row in rows] + [1])
    fig = Figure(figsize=(1.9 * columns, 2.3 * len(rows) + (0.4 if title else 0)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax_row, row in zip(axes, rows):
        query_ax = ax_row[0]
        if row.get("image") is not None:
            draw_image(query_ax, row["image"])
        elif row.get("text"):
            query_ax.text(0.5, 0.5, textwrap.fill(f"“{row['text']}”", 18), ha="center", va="center", fontsize=10,
                          style="italic", transform=query_ax.transAxes)
        query_ax.set_title("query" if row.get("image") is not None or row.get("text") else "", fontsize=9,
                           fontweight="bold")
        if row.get("caption"):
            query_ax.text(0.5, -0.04, textwrap.fill(row["caption"], 24), ha="center", va="top", fontsize=7,
                          transform=query_ax.transAxes)
        for rank, (ax, result) in enumerate(zip(ax_row[1:], row["results"]), start=1):
            draw_image(ax, result["image_path"])
            leaf = result["category"].split(config.CATEGORY_SEP)[-1]
            score = f"  {result['score']:.3f}" if "score" in result else ""
            ax.set_title(f"{rank}. {result['id']}{score}", fontsize=8)
            ax.text(0.5, -0.04, textwrap.fill(leaf, 22), ha="center", va="top", fontsize=7, transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def draw_image(ax, image):
    """A square thumbnail of an image path or array; where the file cannot be read, a box that says so."""
    if isinstance(image, np.ndarray):
        ax.imshow(image)
        return
    try:
        ax.imshow(load_image(image, THUMBNAIL))
    except (OSError, ValueError) as err:
        log.warning("image not found or unreadable: %s (%s)", image, err)
        ax.imshow(np.full((THUMBNAIL, THUMBNAIL, 3), 235, dtype=np.uint8))
        ax.text(0.5, 0.5, "image not found", ha="center", va="center", color="tab:red", fontsize=8,
                transform=ax.transAxes)
