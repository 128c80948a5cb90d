"""A model's category reading of a query: path probabilities from its outputs, and their short description."""
import functools

import numpy as np

from shoplens.models.decode import level_probs_from_paths


def describe(probs, metadata, top=3):
    """The best path, its probability, and the ``top`` classes of each level with their probabilities."""
    labels = metadata["labels"]
    best = int(np.argmax(probs))
    level_probs = level_probs_from_paths(probs[None], labels["paths"], labels["levels"])
    levels = {}
    for (name, classes), level in zip(labels["levels"].items(), level_probs):
        order = np.argsort(-level[0])[:top]
        chosen = zip(order.tolist(), level[0, order].tolist())  # Python numbers: numpy's cost more to round
        levels[name] = [{"name": classes[j], "probability": round(p, 4)} for j, p in chosen]
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
