"""The evaluation report as people read it, from a model's metrics (no TensorFlow needed)."""
from shoplens.models.metrics import worst_classes

COLUMNS = (("accuracy", "accuracy"), ("most frequent", "most_frequent"), ("1/K", "random_guess"),
           ("balanced", "balanced_accuracy"), ("macro-F1", "macro_f1"), ("top-5", "top5"), ("ECE", "ece"))


def format_report(metrics, title):
    """A table per level: the model's accuracy beside the most-frequent-class baseline and 1/K (the original
    system's "random guess"), balanced accuracy, macro-F1, top-5 and calibration error; then the full path,
    the items whose title was never trained on, and the worst classes of the deepest level."""
    levels = list(metrics["accuracy"])
    width = max(len(level) for level in levels + ["level"])
    columns = [(label, key) for label, key in COLUMNS if key in metrics]
    if "accuracy_before_decoding" in metrics:
        columns.append(("before decoding", "accuracy_before_decoding"))
    lines = [title, "  ".join(["level".ljust(width), *(label for label, _ in columns)])]
    for level in levels:
        cells = [_cell(metrics[key].get(level), len(label)) for label, key in columns]
        lines.append("  ".join([level.ljust(width), *cells]))
    lines.append(f"full category path accuracy: {metrics['path_accuracy']:.2f}")
    if metrics.get("unseen_title_accuracy"):
        values = ", ".join(f"{_value(v)}" for v in metrics["unseen_title_accuracy"].values())
        lines.append(f"accuracy on the {metrics['unseen_title_items']:,} test items whose title is not in train: "
                     f"{values}")
    deepest = levels[-1]
    if metrics.get("classes", {}).get(deepest):
        worst = ", ".join(f"{row['class']} {row['f1-score']:.2f} ({row['support']})"
                          for row in worst_classes(metrics["classes"][deepest]))
        lines.append(f"worst classes of {deepest} (F1, test items): {worst}")
    return "\n".join(lines)


def _value(value):
    return "n/a" if value is None else f"{value:.2f}"


def _cell(value, width):
    return _value(value).rjust(max(width, 4))
