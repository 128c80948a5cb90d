"""Figures of search results: each query beside the products it found."""
import logging
import textwrap

import numpy as np
from matplotlib.figure import Figure

from shoplens import config
from shoplens.data.images import load_image
from shoplens.search.image_search import padded_box
from shoplens.visualization.dataset_figures import save_figure

THUMBNAIL = 128
log = logging.getLogger(__name__)


def plot_search_grid(rows, path=None, title=None):
    """One row per query: the query (a photo or a text) and then its results.

    Parameters
    ----------
    rows : list of dict
        Each with ``results`` (search results: ``image_path``, ``id``, ``category``, optionally ``title``
        and ``score``) and the query as ``image`` (a path or an array), ``text``, or neither (a plain
        listing); ``caption`` is written under the query, and ``crop`` (as a photo search returns it:
        ``box``, ``width``, ``height`` in the photo's pixels) is drawn on it. Under each result go its
        title, shortened, and its category path.
    path : str or Path, optional
        Where to save the figure (PNG).
    title : str, optional
        The figure's title.
    """
    columns = 1 + max([len(row["results"]) for row in rows] + [1])
    fig = Figure(figsize=(2.1 * columns, 3.0 * len(rows) + (0.4 if title else 0)))
    axes = fig.subplots(len(rows), columns, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax_row, row in zip(axes, rows):
        query_ax = ax_row[0]
        if row.get("image") is not None:
            draw_image(query_ax, row["image"])
            if row.get("crop"):
                draw_box(query_ax, row["crop"])
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
            score = f"  score {result['score']:.3f}" if result.get("score") is not None else ""
            ax.set_title(f"{rank}. {result['id']}{score}", fontsize=8)
            ax.text(0.5, -0.04, result_caption(result), ha="center", va="top", fontsize=7, transform=ax.transAxes)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path)


def result_caption(result, width=32):
    """A result's title, shortened to two lines, above its category path, one level a line where it is long."""
    lines = textwrap.wrap(str(result.get("title") or ""), width, max_lines=2, placeholder=" …")
    path = str(result["category"])
    if len(path) > width:
        levels = path.split(config.CATEGORY_SEP)
        path = "\n".join(textwrap.shorten(level if k == 0 else f"> {level}", width, placeholder="…")
                         for k, level in enumerate(levels))
    return "\n".join([*lines, path])


def draw_box(ax, crop):
    """The box a photo was cropped to, on its thumbnail: the photo padded to a square of THUMBNAIL pixels."""
    from matplotlib.patches import Rectangle

    x0, y0, x1, y1 = padded_box(crop["box"], (crop["width"], crop["height"]), THUMBNAIL)
    # A pixel's centre is at its index: its edges half a pixel either side.
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="tab:orange",
                           linewidth=1.5))


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
