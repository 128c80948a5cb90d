"""How good a model's predictions are, per level of the category tree, beside baselines that mean something.

Per level: accuracy beside the most-frequent-class baseline (scikit-learn's
``DummyClassifier`` fitted on the train labels) and 1/K, the original system's
"random guess"; balanced accuracy and macro-F1, which weigh every class alike;
top-5 accuracy; the expected calibration error of the probabilities the gallery
shows; a per-class report (scikit-learn's ``classification_report``); and, where
titles are known, the accuracy on test items whose cleaned title never occurs in
train (items whose twin was trained on are no test of generalisation).
"""
import warnings

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.dummy import DummyClassifier
from sklearn.metrics import balanced_accuracy_score, classification_report, f1_score

from shoplens.models.inputs import encode_targets

CALIBRATION_BINS = 15


def evaluate(predictions, table, metadata, train_titles=None):
    """Metrics of ``predictions`` against the true categories of ``table``: ``{metric: {level: value}}``, and more.

    Each level is scored on the decoded path, so every prediction is a path of the
    tree; multilabel models also report each head's own accuracy before decoding.
    Items of classes never seen in training count as wrong. ``train_titles`` (the
    cleaned titles of the train split) adds the accuracy on items whose title is not
    among them.
    """
    truth = encode_targets(table, "multilabel", metadata["labels"])
    decoded = predictions.decoded_indices()
    counts = metadata.get("label_counts", {}).get("levels", {})
    unseen = None
    if train_titles is not None and "clean_title" in table:
        unseen = ~table["clean_title"].isin(train_titles).to_numpy()
    metrics = {"items": len(table), "accuracy": {}, "most_frequent": {}, "random_guess": {}, "balanced_accuracy": {},
               "macro_f1": {}, "top5": {}, "ece": {}, "classes": {}, "reliability": {}}
    if predictions.independent is not None:
        metrics["accuracy_before_decoding"] = {}
    if unseen is not None:
        metrics["unseen_title_items"] = int(unseen.sum())
        metrics["unseen_title_accuracy"] = {}
    for k, (name, classes) in enumerate(predictions.levels.items()):
        y_true, y_pred, probs = truth[name], decoded[:, k], predictions.level_probs[k]
        correct = y_pred == y_true
        metrics["accuracy"][name] = float(correct.mean())
        metrics["most_frequent"][name] = most_frequent_accuracy(counts.get(name), classes, y_true)
        metrics["random_guess"][name] = 1.0 / len(classes)
        known = y_true >= 0
        with warnings.catch_warnings():  # a predicted class absent from the test items is no news
            warnings.simplefilter("ignore")
            metrics["balanced_accuracy"][name] = float(balanced_accuracy_score(y_true[known], y_pred[known])) \
                if known.any() else 0.0
        metrics["macro_f1"][name] = float(f1_score(y_true, y_pred, labels=np.unique(y_true[known]), average="macro",
                                                   zero_division=0))
        top5 = np.argsort(-probs, axis=1)[:, :5]
        metrics["top5"][name] = float(np.mean((top5 == y_true[:, None]).any(axis=1)))
        confidence, head_correct = probs.max(axis=1), probs.argmax(axis=1) == y_true
        metrics["ece"][name], metrics["reliability"][name] = calibration(confidence, head_correct)
        metrics["classes"][name] = class_report(y_true, y_pred, classes)
        if predictions.independent is not None:
            metrics["accuracy_before_decoding"][name] = float(np.mean(predictions.independent[k] == y_true))
        if unseen is not None:
            metrics["unseen_title_accuracy"][name] = float(correct[unseen].mean()) if unseen.any() else None
    metrics["path_accuracy"] = float(np.mean([predictions.path(i) == c for i, c in enumerate(table["category"])]))
    return metrics


def most_frequent_accuracy(counts, classes, y_true):
    """Accuracy of always answering the class most frequent in train (``counts``: class -> train items)."""
    if not counts:
        return None
    index = {c: i for i, c in enumerate(classes)}
    y_train = np.repeat([index[c] for c in counts], list(counts.values()))
    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((len(y_train), 1)), y_train)
    return float(np.mean(dummy.predict(np.zeros((len(y_true), 1))) == y_true))


def calibration(confidence, correct, bins=CALIBRATION_BINS):
    """Expected calibration error, and the reliability diagram's bins (mean confidence, accuracy, items).

    ECE is the items-weighted mean gap between confidence and accuracy over equal-width
    bins of confidence: 0 when a shown 80 % is right 80 % of the time.
    """
    if not len(confidence):
        return 0.0, {"confidence": [], "accuracy": [], "items": []}
    accuracy, mean_confidence = calibration_curve(correct.astype(int), confidence, n_bins=bins, strategy="uniform",
                                                  pos_label=1)
    # Items per bin, binned as calibration_curve bins them; it leaves empty bins out.
    items = np.bincount(np.searchsorted(np.linspace(0, 1, bins + 1)[1:-1], confidence), minlength=bins)
    items = items[items > 0]
    ece = float(np.sum(items * np.abs(accuracy - mean_confidence)) / items.sum())
    return ece, {"confidence": mean_confidence.round(4).tolist(), "accuracy": accuracy.round(4).tolist(),
                 "items": items.tolist()}


def class_report(y_true, y_pred, classes):
    """Precision, recall, F1 and support of every class, as scikit-learn's ``classification_report`` gives them."""
    report = classification_report(y_true, y_pred, labels=np.arange(len(classes)), target_names=list(classes),
                                   output_dict=True, zero_division=0)
    return [{"class": name, **{key: round(float(value), 4) if key != "support" else int(value)
                               for key, value in report[name].items()}} for name in classes]


def worst_classes(report, n=5):
    """The ``n`` classes with the lowest F1 among those with test items."""
    present = [row for row in report if row["support"] > 0]
    return sorted(present, key=lambda row: (row["f1-score"], -row["support"]))[:n]
