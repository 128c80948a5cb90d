"""Figures of the audit: the products most likely filed under the wrong category."""
import textwrap

from matplotlib.figure import Figure

from shoplens import config
from shoplens.visualization.dataset_figures import save_figure
from shoplens.visualization.search_figures import draw_image

COLUMNS = 6


def plot_label_issues(issues, path=None):
    """A grid of flagged products: photo, id, title, and the given and suggested class of the flagged level.

    ``issues`` is a table of :func:`shoplens.audit.label_issues.label_issue_table` rows with
    ``image_path`` and ``title`` added, at most one row per product.
    """
    rows = -(-len(issues) // COLUMNS)
    fig = Figure(figsize=(2.3 * COLUMNS, 3.1 * rows + 0.5))
    axes = fig.subplots(rows, COLUMNS, squeeze=False)
    for ax in axes.ravel():
        ax.set_axis_off()
    for ax, issue in zip(axes.ravel(), issues.itertuples()):
        draw_image(ax, config.project_path(issue.image_path))
        ax.set_title(f"{issue.id}  p={issue.given_probability:.2f}", fontsize=8)
        caption = (f"{textwrap.shorten(str(getattr(issue, 'title', '')), 60)}\n"
                   f"given: {issue.given}\nsuggested: {issue.suggested} ({issue.suggested_probability:.2f})")
        ax.text(0.5, -0.04, "\n".join(textwrap.fill(line, 28) for line in caption.split("\n")), ha="center",
                va="top", fontsize=7, transform=ax.transAxes)
    fig.suptitle("Products most likely filed under the wrong category (out-of-fold probability p of the given one)")
    fig.tight_layout()
    return save_figure(fig, path)
