"""Retrieval quality of the image search: every test product queried against the train products.

A result is relevant when it has the query's category at the last level (e.g.
``product_details``). Reported: precision@1, @5 and @10, mean average precision
over the top 10 (mAP@10: for each query, the mean of precision@r over the ranks r
<= 10 that hold a relevant result, divided by min(10, relevant train products),
so a perfect top 10 scores 1), the precision@5 at every level, and the
precision@5 a random ranking would get, for comparison.

With ``UNSEEN`` the data stage held some categories out of every model; their
products are then queried against each other, as deep metric learning is
evaluated (Musgrave et al., "A Metric Learning Reality Check", 2020): Recall@k,
the share of queries with a relevant product among their k nearest, and MAP@R,
the mean average precision over the R nearest, where R is the number of products
relevant to the query. It says how well the embeddings tell apart products of
categories the model never learnt.
"""
import json

import numpy as np

from shoplens import ShoplensError, config
from shoplens.outputs import publish
from shoplens.pipeline import evaluate_search_key, search_metrics_dir
from shoplens.stages import version_of

K_VALUES = (1, 5, 10)
RECALL_K = (1, 5, 10)


def evaluate_search(repository, reports_dir=config.REPORTS_DIR):
    """Query every test product against the train products; publish the metrics in
    ``reports/<catalog>/search/metrics.json`` and return them."""
    key = evaluate_search_key(repository.models_dir)
    metrics = search_metrics(repository.features, repository.index)
    if (repository.features["splits"] == config.UNSEEN_SPLIT).any():
        metrics["unseen"] = unseen_metrics(repository.features, repository.index)
    metrics["catalog"] = repository.catalog_name
    with publish(search_metrics_dir(repository.catalog_name, reports_dir), "search evaluation", key,
                 version_of(key)) as staging:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def search_metrics(features, index, query_split="test", candidate_split="train", batch_size=1024):
    """Retrieval metrics of ``index`` over its vectors, with the labels and splits of ``features`` (the arrays of
    the ``.npz``)."""
    splits = features["splits"]
    queries = np.flatnonzero(splits == query_split)
    candidates = splits == candidate_split
    if not len(queries) or not candidates.any():
        raise ShoplensError(f"no '{query_split}' or no '{candidate_split}' products in the extracted features; "
                            "run `make model_extract_features` on a split catalog")
    k = min(max(K_VALUES), int(candidates.sum()))
    neighbours = np.concatenate([
        index.search(index.vectors_of(queries[i:i + batch_size]), k, allowed=candidates)[1]
        for i in range(0, len(queries), batch_size)
    ])
    labels = features["labels"]
    levels = features["levels"].tolist()
    last = labels[:, -1]
    relevant = (last[neighbours] == last[queries][:, None]) & (neighbours >= 0)

    metrics = {"queries": len(queries), "candidates": int(candidates.sum()), "query_split": query_split,
               "candidate_split": candidate_split, "relevant": f"same {levels[-1]}",
               "index": index.kind if index.precision == "float32" else f"{index.kind} {index.precision}",
               "model": str(features["model"]), "data_version": str(features["data_version"])}
    for n in K_VALUES:
        if n <= k:
            metrics[f"precision@{n}"] = float(relevant[:, :n].mean())
    in_candidates = {c: int(n) for c, n in zip(*np.unique(last[candidates], return_counts=True))}
    available = np.array([in_candidates.get(c, 0) for c in last[queries]])
    hits = np.cumsum(relevant, axis=1)
    precision_at_rank = hits / np.arange(1, k + 1)
    average_precision = (precision_at_rank * relevant).sum(axis=1) / np.maximum(np.minimum(available, k), 1)
    # A query whose category has no train product cannot find anything relevant: left out of the mean.
    metrics[f"map@{k}"] = float(average_precision[available > 0].mean()) if (available > 0).any() else 0.0
    metrics["random_precision"] = float(np.mean(available / candidates.sum()))
    metrics["precision@5_by_level"] = {
        name: float(((labels[neighbours[:, :5], j] == labels[queries, j][:, None]) & (neighbours[:, :5] >= 0)).mean())
        for j, name in enumerate(levels)
    }
    return metrics


def unseen_metrics(features, index, split=config.UNSEEN_SPLIT, batch_size=256):
    """Recall@k and MAP@R of the products of ``split``, each queried against the others of that split."""
    rows = np.flatnonzero(features["splits"] == split)
    _, classes = np.unique(features["labels"][rows, -1], return_inverse=True)
    sizes = np.bincount(classes)
    if len(rows) < 2 or sizes.max() < 2:
        raise ShoplensError(f"the '{split}' split needs categories of two or more products to measure retrieval")
    k = int(min(len(rows) - 1, max(max(RECALL_K), sizes.max() - 1)))
    allowed = np.zeros(len(features["splits"]), dtype=bool)
    allowed[rows] = True
    position = np.zeros(len(features["splits"]), dtype=np.int64)
    position[rows] = np.arange(len(rows))
    ranks = np.arange(1, k + 1)
    hits, average_precision = {n: [] for n in RECALL_K if n <= k}, []
    # A batch at a time: a whole split's neighbours, k of them up to its largest category, need not fit in memory.
    for i in range(0, len(rows), batch_size):
        queries = rows[i:i + batch_size]
        found = index.search(index.vectors_of(queries), k + 1, allowed=allowed)[1]
        # A product is not its own neighbour: its row is dropped, or the last one when it was not found.
        itself = found == queries[:, None]
        itself[~itself.any(axis=1), -1] = True
        found = found[~itself].reshape(len(queries), k)
        query_classes = classes[position[queries]]
        relevant = (classes[position[found]] == query_classes[:, None]) & (found >= 0)  # -1: none found
        r = sizes[query_classes] - 1  # R: the other products of the query's category
        keep = r > 0  # a category of one product has nothing to find
        relevant, r = relevant[keep], r[keep]
        for n in hits:
            hits[n].append(relevant[:, :n].any(axis=1))
        precision_at_rank = np.cumsum(relevant, axis=1) / ranks
        average_precision.append((precision_at_rank * relevant * (ranks <= r[:, None])).sum(axis=1) / r)
    average_precision = np.concatenate(average_precision)
    counted = sizes[classes] > 1
    metrics = {"split": split, "queries": int(counted.sum()), "categories": int((sizes > 1).sum()),
               "relevant": f"same {features['levels'].tolist()[-1]}"}
    metrics.update({f"recall@{n}": float(np.concatenate(found).mean()) for n, found in hits.items()})
    metrics["map@r"] = float(average_precision.mean())
    # What a random ranking gets: Recall@1 is the chance that one other product is of the query's category.
    metrics["random_recall@1"] = float(np.mean((sizes[classes] - 1)[counted] / (len(rows) - 1)))
    return metrics


def format_search_report(metrics):
    """A few lines a person reads after ``make evaluate_search``."""
    scores = "   ".join(f"{key} {metrics[key]:.3f}" for key in metrics if key.startswith(("precision@", "map@"))
                       and not isinstance(metrics[key], dict))
    by_level = ", ".join(f"{name} {value:.3f}" for name, value in metrics["precision@5_by_level"].items())
    return "\n".join([
        f"image search on {metrics['catalog']} ({metrics['model']}, {metrics['index']} index): "
        f"{metrics['queries']:,} {metrics['query_split']} "
        f"products queried against {metrics['candidates']:,} {metrics['candidate_split']} products, "
        f"relevant = {metrics['relevant']}",
        scores,
        f"random ranking: precision {metrics['random_precision']:.3f}",
        f"precision@5 by level: {by_level}",
        *([_format_unseen(metrics["unseen"])] if "unseen" in metrics else []),
    ])


def _format_unseen(unseen):
    scores = "   ".join(f"{key} {value:.3f}" for key, value in unseen.items() if key.startswith(("recall@", "map@")))
    return (f"categories no model saw ({unseen['split']} split): {unseen['queries']:,} products of "
            f"{unseen['categories']} categories queried against each other: {scores} "
            f"(random ranking: recall@1 {unseen['random_recall@1']:.3f})")
