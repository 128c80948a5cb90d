"""Figures of a trained model: training curves and confusion matrices."""
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from shoplens.visualization.dataset_figures import save_figure


def plot_training_curves(history, name, path=None):
    """Loss and per-output accuracy, train and validation side by side, per epoch."""
    accuracies = sorted(k for k in history if k.endswith("accuracy") and not k.startswith("val_"))
    fig = Figure(figsize=(5 * (1 + len(accuracies)), 3.5))
    axes = fig.subplots(1, 1 + len(accuracies), squeeze=False)[0]
    epochs = range(1, len(history["loss"]) + 1)
    for ax, key in zip(axes, ["loss", *accuracies]):
        ax.plot(epochs, history[key], marker="o", label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", label="validation")
        ax.set_title(key.replace("_", " "))
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(f"Training of {name}")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion_matrix(y_true, y_pred, classes, title, path=None):
    """Row-normalised confusion matrix (each row: where that true class went)."""
    size = max(5, 0.35 * len(classes) + 3)
    fig = Figure(figsize=(size, size))
    ax = fig.subplots()
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(classes), normalize="true", ax=ax, colorbar=False,
        include_values=len(classes) <= 12, values_format=".2f", xticks_rotation="vertical", cmap="Blues",
    )
    ax.set_title(title)
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
