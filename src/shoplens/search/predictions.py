"""A model's category reading of a query: path probabilities from its outputs, and their short description."""
import functools

import numpy as np

from shoplens.models.decode import path_table


def describe(probs, metadata, top=3):
    """The best path, its probability, and the ``top`` classes of each level with their probabilities.

    For one query, in Python numbers where NumPy would sort or call BLAS: each such call releases the GIL, and in
    a threaded server every release can hand it to another request's thread.
    """
    labels = metadata["labels"]
    table = path_table(labels["paths"], labels["levels"])
    probs = np.asarray(probs, dtype=np.float64)
    levels = {}
    for k, (name, classes) in enumerate(labels["levels"].items()):
        level = np.bincount(table[:, k], weights=probs, minlength=len(classes)).tolist()
        order = sorted(range(len(classes)), key=level.__getitem__, reverse=True)[:top]
        levels[name] = [{"name": classes[j], "probability": round(level[j], 4)} for j in order]
    best = int(probs.argmax())
    return {"category": labels["paths"][best], "probability": round(float(probs[best]), 4), "levels": levels,
            "model": metadata["name"]}


def per_product(probs, metadata, categories, category_codes):
    """Each product's probability of its own category path; paths the model never saw get 0."""
    columns = _columns(tuple(metadata["labels"]["paths"]), tuple(categories))
    lookup = np.append(np.asarray(probs, np.float32), np.float32(0.0))[columns]  # column -1: the 0 appended
    return lookup[category_codes]


@functools.lru_cache(maxsize=8)
def _columns(paths, categories):
    """The column of each category in a model's path probabilities; -1 for a path it never saw."""
    index = {p: i for i, p in enumerate(paths)}
    return np.array([index.get(c, -1) for c in categories], dtype=np.int64)
