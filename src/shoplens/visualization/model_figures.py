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
