"""Figures of a trained model: training curves and confusion matrices."""
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from shoplens.visualization.dataset_figures import save_figure

CONFUSION_CLASSES = 25  # classes a confusion matrix shows at most: the most frequent ones
OTHER = "(other classes)"


def plot_training_curves(history, name, path=None, heads=None, best_epoch=None, first_epoch=1):
    """The loss, then the accuracy of each output in the model's order, train and validation, per epoch.

    Parameters
    ----------
    history : dict
        Keras history: ``loss``, ``<head>_accuracy`` and their ``val_`` twins, one value per epoch.
    name : str
        What was trained on what, for the title (e.g. ``multilabel_combined on demo``).
    path : str or Path, optional
        Where to save the figure (PNG).
    heads : list of str, optional
        The model's outputs in order (the levels, top first, for a multilabel model); accuracies of outputs
        not named come after them.
    best_epoch : int, optional
        The epoch whose weights were kept, marked in every panel.
    first_epoch : int
        The number of the history's first epoch (a training resumed from a backup goes on from there).
    """
    accuracies = [k for k in history if k.endswith("accuracy") and not k.startswith("val_")]
    ordered = [f"{head}_accuracy" for head in heads or [] if f"{head}_accuracy" in accuracies]
    keys = ["loss", *ordered, *[k for k in accuracies if k not in ordered]]
    fig = Figure(figsize=(4.5 * len(keys), 3.6))
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    epochs = range(first_epoch, first_epoch + len(history["loss"]))
    for ax, key in zip(axes, keys):
        ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        if best_epoch:
            ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1, label=f"kept (epoch {best_epoch})")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.suptitle(f"Training of {name}")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion_matrix(y_true, y_pred, classes, title, path=None, top=CONFUSION_CLASSES):
    """Row-normalised confusion matrix: each row says where the items of one true class went.

    Of more than ``top`` classes, the ``top`` most frequent true classes are shown (the title says so), and
    a last column counts the items predicted as any class not shown, so that every row still sums to 100 %.
    Each class is labelled with its number of items (its support); cells show percentages where they fit.
    """
    classes = [str(c) for c in classes]
    y_true, y_pred = pd.Series(y_true).astype(str).to_numpy(), pd.Series(y_pred).astype(str).to_numpy()
    support = pd.Series(y_true).value_counts().reindex(classes, fill_value=0)
    shown = list(support.sort_values(ascending=False, kind="stable").index[:top]) if len(classes) > top else classes
    rows = np.isin(y_true, shown)
    predicted = np.where(np.isin(y_pred, shown), y_pred, OTHER)[rows]
    columns = shown + ([OTHER] if len(shown) < len(classes) or OTHER in predicted else [])
    index = {c: i for i, c in enumerate(columns)}
    counts = np.zeros((len(shown), len(columns)), dtype=int)
    np.add.at(counts, ([index[c] for c in y_true[rows]], [index[c] for c in predicted]), 1)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)

    width, height = max(5.5, 0.38 * len(columns) + 4), max(4.5, 0.38 * len(shown) + 3)
    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, format=PercentFormatter(xmax=1),
                 label="share of the true class's items")
    if len(columns) <= 40:  # at 40 columns a cell still holds two digits
        size = 8 if len(columns) <= 12 else 6
        for i, j in zip(*np.nonzero(counts)):
            ax.text(j, i, f"{100 * share[i, j]:.0f}" if share[i, j] >= 0.005 else "<1", ha="center", va="center",
                    fontsize=size, color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(columns)), [f"{c} ({support[c]})" if c in support else c for c in columns],
                  rotation=90, fontsize=8)
    ax.set_yticks(range(len(shown)), [f"{c} ({support[c]})" for c in shown], fontsize=8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class (items)")
    limited = f"\nthe {len(shown)} most frequent of {len(classes)} classes" if len(shown) < len(classes) else ""
    ax.set_title(f"{title}{limited}\n% of each true class's items, per predicted class", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reliability(reliability, name, path=None):
    """Reliability diagrams, one per level: the accuracy of the items in each bin of confidence against the
    confidence the model gave them, with how many items each bin holds. On the diagonal, a shown 80 % is right
    80 % of the time."""
    levels = list(reliability)
    fig = Figure(figsize=(4.2 * len(levels), 4.4))
    axes = fig.subplots(1, len(levels), squeeze=False)[0]
    for ax, level in zip(axes, levels):
        bins = reliability[level]
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="calibrated")
        ax.plot(bins["confidence"], bins["accuracy"], marker="o", color="tab:blue", label="model")
        for x, y, n in zip(bins["confidence"], bins["accuracy"], bins["items"]):
            ax.annotate(f"{n}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.08)
        ax.set_xlabel("confidence (top class probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(level)
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(f"Calibration of {name} (numbers: items per bin)")
    fig.tight_layout()
    return save_figure(fig, path)
