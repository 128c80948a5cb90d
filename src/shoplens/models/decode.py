"""Turning a model's probabilities into category paths and per-level scores.

A multilabel model has one softmax per level, and the best class of each level
need not form a path of the tree ("Footwear > Topwear > Shoes"). Decoding picks
the path with the highest joint probability instead: the sum over levels of the
log-probability of that path's class at each level.
"""
import functools

import numpy as np

from shoplens import config


def path_table(paths, levels):
    """``(n_paths, n_levels)`` class indices of each path's class at each level (read-only)."""
    return _tables(tuple(paths), tuple(map(tuple, levels.values())))[0]


@functools.lru_cache(maxsize=32)
def _tables(paths, levels):
    """The path table and, per level, the ``(n_paths, n_classes)`` matrix that sums paths into classes.

    Made once per model: text search decodes one query at a time, and building them was a third of it.
    """
    index = [{c: i for i, c in enumerate(classes)} for classes in levels]
    table = np.array([[index[k][part] for k, part in enumerate(p.split(config.CATEGORY_SEP))] for p in paths])
    onehots = []
    for k, classes in enumerate(levels):
        onehot = np.zeros((len(paths), len(classes)))
        onehot[np.arange(len(paths)), table[:, k]] = 1.0
        onehots.append(onehot)
    for array in (table, *onehots):
        array.flags.writeable = False  # shared by every caller
    return table, onehots


def decode_paths(level_probs, paths, levels):
    """Joint best path for each item.

    Parameters
    ----------
    level_probs : list of arrays
        One ``(n_items, n_classes)`` probability array per level, in level order.
    paths : list of str
        The valid category paths (those seen in training).
    levels : dict
        Level name -> its classes, in the order of ``level_probs``' columns.

    Returns
    -------
    index : array of int
        Index into ``paths`` of the best path of each item.
    path_probs : array
        ``(n_items, n_paths)`` joint probabilities, renormalised over the valid paths.
    """
    table = path_table(paths, levels)
    log_joint = sum(np.log(np.clip(p, 1e-12, 1.0))[:, table[:, k]] for k, p in enumerate(level_probs))
    log_joint -= log_joint.max(axis=1, keepdims=True)
    joint = np.exp(log_joint)
    joint /= joint.sum(axis=1, keepdims=True)
    return joint.argmax(axis=1), joint


def path_probs(outputs, metadata):
    """``(n, n_paths)`` probabilities of the category paths from a model's outputs."""
    labels = metadata["labels"]
    if metadata["classmode"] == "multiclass":
        return np.asarray(outputs["category"], dtype=np.float64)
    level_probs = [np.asarray(outputs[name], dtype=np.float64) for name in labels["levels"]]
    return decode_paths(level_probs, labels["paths"], labels["levels"])[1]


def level_probs_from_paths(path_probs, paths, levels):
    """Per-level probabilities of a distribution over paths: each class sums its paths."""
    _, onehots = _tables(tuple(paths), tuple(map(tuple, levels.values())))
    return [path_probs @ onehot for onehot in onehots]


def combine_posteriors(posteriors, prior):
    """One posterior from several models' posteriors over the same classes, as a product of experts.

    Each model's posterior already holds the prior once (Bayes: p(c | x) is
    proportional to p(x | c) p(c)); multiplying them would count it once per model.
    Dividing the product by the prior ``len(posteriors) - 1`` times counts it once:
    the posterior of independent evidence.

    Parameters
    ----------
    posteriors : list of arrays of shape (n_classes,) or (n_items, n_classes)
        Each model's probabilities of the classes for one item, or for each of many.
    prior : array of shape (n_classes,)
        The classes' frequencies in training (any positive scale).
    """
    prior = np.asarray(prior, dtype=np.float64)
    prior = prior / prior.sum()
    log = sum(np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0)) for p in posteriors)
    log -= (len(posteriors) - 1) * np.log(np.clip(prior, 1e-12, 1.0))
    combined = np.exp(log - log.max(axis=-1, keepdims=True))
    return combined / combined.sum(axis=-1, keepdims=True)
