"""Retrieval quality of the image search: every test product queried against the train products.

A result is relevant when it has the query's category at the last level (e.g.
``product_details``). Reported: precision@1, @5 and @10, mean average precision
over the top 10 (mAP@10: for each query, the mean of precision@r over the ranks r
<= 10 that hold a relevant result, divided by min(10, relevant train products),
so a perfect top 10 scores 1), the precision@5 at every level, and the
precision@5 a random ranking would get, for comparison.
"""
import json

import numpy as np

from shoplens import ShoplensError, config
from shoplens.outputs import publish
from shoplens.pipeline import evaluate_search_key, search_metrics_dir
from shoplens.stages import version_of

K_VALUES = (1, 5, 10)


def evaluate_search(repository, reports_dir=config.REPORTS_DIR):
    """Query every test product against the train products; publish the metrics in
    ``reports/<catalog>/search/metrics.json`` and return them."""
    key = evaluate_search_key(repository.models_dir)
    metrics = search_metrics(repository.features, repository.index)
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
               "candidate_split": candidate_split, "relevant": f"same {levels[-1]}", "index": index.kind,
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
    ])
