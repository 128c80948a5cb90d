"""The evaluation report as people read it, from a model's metrics (no TensorFlow needed)."""


def format_report(metrics, title):
    """The report table of the original system: model accuracy / random guess, per level."""
    names = list(metrics["accuracy"])
    width = max(len(n) for n in names) + 1
    lines = [title]
    for name in names:
        line = f"accuracy {name + ':':<{width}} {metrics['accuracy'][name]:.2f} / {metrics['random_guess'][name]:.2f}"
        line += f"   macro-F1 {metrics['macro_f1'][name]:.2f}   top-5 {metrics['top5'][name]:.2f}"
        if "accuracy_before_decoding" in metrics:
            line += f"   (before path decoding {metrics['accuracy_before_decoding'][name]:.2f})"
        lines.append(line)
    lines.append(f"full category path accuracy: {metrics['path_accuracy']:.2f}")
    return "\n".join(lines)
