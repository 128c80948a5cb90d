"""Benchmark of text search relevance on the real fashion catalog: `make benchmark-text-search`.

In a scratch project: make-dataset, build-features and the text model (``multilabel_text``) with default
settings. Queries are composed from the catalog's own attributes and article types, for every combination with
at least MIN_RELEVANT products: "<colour> <article type> for <gender>" and "<gender> <usage> <article type>"
(or "<usage> <article type> for <gender>"), the type plural or singular, "men" or "men's" first, one word
misspelt (two letters swapped) in 10 % of them. A result is relevant when it has every attribute and the type
the query was made from. The combinations are split in two: weights are chosen on the validate half, the test
half is reported once, 300 queries each.

Compared in the same run, over every product of the catalog:
* today's search (version 1): TF-IDF cosine of the cleaned query and title + 0.5 x the text model's probability
  of the product's category, the list padded to k;
* plain BM25 over the cleaned titles (bm25s);
* shoplens' text search (Repository.search_text), with and without the text model.
Precision@10 and nDCG@10 (binary relevance). Results go to reports/benchmarks/text_search.{json,md}.
"""
import argparse
import itertools
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from measure import machine, median, run_measured, write_report

from shoplens import config

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FASHION = SHARED / "datasets" / "fashion-products"
K = 10
MIN_RELEVANT = 10
QUERIES = 300
MISSPELT = 0.1
TEMPLATES = {"colour": ("colour", "product_details", "gender"), "usage": ("gender", "usage", "product_details")}
# Weights compared on the validate queries: config.TEXT_SEARCH_WEIGHTS is the best of those where the words of a
# query's type (title and category) weigh at least as much as its attributes. Relevance here needs every attribute
# and the type, so it cannot tell a blue shirt from a white running shoe for "blue running shoes for men" when
# fewer than 10 products match fully; a shopper would rather see the shoe.
WEIGHT_GRID = [{"title": t, "attributes": a, "category": c}
               for t, a, c in itertools.product((0.2, 0.4, 0.6), (0.2, 0.4, 0.6), (0.1, 0.2, 0.4))]


def type_first(weights):
    return weights["title"] + weights["category"] >= weights["attributes"]


def singular(word):
    """"Watches" -> "Watch", "Tshirts" -> "Tshirt", "Jeans" stays: the other number of an article type's last word."""
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "ns")):
        return word[:-1]
    return word


def misspell(query, rng):
    """The query with two neighbouring letters of one of its longer words swapped."""
    words = query.split()
    long = [i for i, w in enumerate(words) if len(w) >= 5]
    if not long:
        return query
    i = int(rng.choice(long))
    j = int(rng.integers(1, len(words[i]) - 2))
    w = words[i]
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


def phrase(template, values, rng):
    """One wording of a query for an attribute combination."""
    kind = values["product_details"].split()
    if rng.random() < 0.5:
        kind[-1] = singular(kind[-1])
    kind = " ".join(kind)
    gender = values["gender"]
    if template == "colour":
        text = f"{values['colour']} {kind} for {gender}"
    elif rng.random() < 0.5:
        possessive = "'s" if rng.random() < 0.5 and gender in ("Men", "Women") else ""
        text = f"{gender}{possessive} {values['usage']} {kind}"
    else:
        text = f"{values['usage']} {kind} for {gender}"
    text = text.lower()
    return misspell(text, rng) if rng.random() < MISSPELT else text


def compose_queries(products, seed):
    """Validate and test queries: ``{split: [{"text", "template", "values", "relevant"}]}``."""
    rng = np.random.default_rng(seed)
    combos = []
    for template, fields in TEMPLATES.items():
        sizes = products.groupby(list(fields)).size()
        for values in sizes[sizes >= MIN_RELEVANT].index:
            values = dict(zip(fields, values))
            if "NA" in values.values():
                continue
            combos.append((template, values))
    order = rng.permutation(len(combos))
    halves = {"validate": [combos[i] for i in order[::2]], "test": [combos[i] for i in order[1::2]]}
    queries = {}
    for split, part in halves.items():
        picked = [part[i % len(part)] for i in rng.permutation(max(QUERIES, len(part)))[:QUERIES]]
        rows = []
        for template, values in picked:
            relevant = np.ones(len(products), dtype=bool)
            for field, value in values.items():
                relevant &= (products[field] == value).to_numpy()
            rows.append({"text": phrase(template, values, rng), "template": template, "values": values,
                         "relevant": relevant})
        queries[split] = rows
    return queries, {split: len(part) for split, part in halves.items()}


def scores_at_k(ranked, relevant):
    """Precision@K and nDCG@K of a ranked list of rows."""
    hits = relevant[np.asarray(ranked[:K], dtype=int)] if len(ranked) else np.zeros(0, dtype=bool)
    gains = hits / np.log2(np.arange(2, len(hits) + 2))
    ideal = (1 / np.log2(np.arange(2, min(K, relevant.sum()) + 2))).sum()
    return hits.sum() / K, float(gains.sum() / ideal)


def evaluate(rank, queries):
    """Mean precision@K and nDCG@K of ``rank(query) -> rows`` over the queries, and per template."""
    per_query = [scores_at_k(rank(q), q["relevant"]) for q in queries]
    out = {"precision@10": float(np.mean([p for p, _ in per_query])),
           "ndcg@10": float(np.mean([n for _, n in per_query]))}
    for template in TEMPLATES:
        chosen = [s for s, q in zip(per_query, queries) if q["template"] == template]
        out[f"precision@10 {template}"] = float(np.mean([p for p, _ in chosen]))
    return out


def text_model_probs(repository, queries):
    """Each query's per-product category probability from the text model, as Repository.search_text computes it."""
    from shoplens.search.predictions import per_product

    read_categories, metadata = repository._text_runner()
    cleaner = repository.text_index().cleaner
    probs = read_categories([cleaner(q["text"]) or "unknown" for q in queries])
    return [per_product(p, metadata, repository.fields.categories, repository.fields.category_codes) for p in probs]


def version_one(repository, queries):
    """Today's search: TF-IDF cosine + 0.5 x the category probability, the top K whatever their score."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(tokenizer=str.split, token_pattern=None, lowercase=False, sublinear_tf=True)
    titles = vectorizer.fit_transform(repository.features["clean_titles"].tolist())
    cleaner = repository.text_index().cleaner
    probs = text_model_probs(repository, queries)
    lookup = {id(q): p for q, p in zip(queries, probs)}

    def rank(query):
        scores = (titles @ vectorizer.transform([cleaner(query["text"])]).T).toarray().ravel()
        scores = scores + 0.5 * lookup[id(query)]
        return np.argsort(-scores, kind="stable")[:K]
    return rank


def plain_bm25(repository):
    """BM25 over the cleaned titles with the whole cleaned query."""
    bm25 = repository.text_index().bm25
    cleaner = repository.text_index().cleaner

    def rank(query):
        words = cleaner(query["text"]).split()
        scores = np.asarray(bm25.get_scores(words)) if words else np.zeros(len(repository))
        return [i for i in np.argsort(-scores, kind="stable")[:K] if scores[i] > 0]
    return rank


def shoplens_search(repository, weights=None):
    """Repository.search_text, with the given weights; the rows of its results."""
    row = {item: i for i, item in enumerate(repository.ids.tolist())}

    def rank(query):
        if weights:
            repository.text_index().weights = dict(weights)
        return [row[r["id"]] for r in repository.search_text(query["text"], k=K)[1]]
    return rank


def load_repository(workdir, with_text_model=True):
    """A Repository over every product of the scratch project (no image embeddings: text search needs none)."""
    from shoplens.search.index import ExactIndex
    from shoplens.search.repository import Repository

    processed = workdir / "data" / "processed"
    summary = json.loads((processed / "splits" / "summary.json").read_text())
    products = pd.concat([pd.read_parquet(processed / "splits" / f"{s}.parquet").assign(split=s)
                          for s in ("train", "validate", "test")], ignore_index=True)
    levels, attributes = summary["levels"], summary["attributes"]
    features = {
        "ids": products["id"].to_numpy(str), "titles": products["title"].to_numpy(str),
        "clean_titles": products["clean_title"].to_numpy(str), "category": products["category"].to_numpy(str),
        "levels": np.array(levels), "labels": products[levels].to_numpy(str),
        "attributes": np.array(attributes), "attribute_values": products[attributes].to_numpy(str),
        "image_paths": products["image_path"].to_numpy(str), "image_sha1": products["image_sha1"].to_numpy(str),
        "splits": products["split"].to_numpy(str), "model": np.array("none"), "layer": np.array("none"),
        "embeddings": np.zeros((len(products), 1), np.float32),
    }
    repository = Repository(features, ExactIndex(features["embeddings"]), workdir / "models",
                            "multilabel_text" if with_text_model else "no_text_model",
                            summary["options"]["language"], summary["catalog_name"], processed)
    return repository, products


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    parser.add_argument("--seed", type=int, default=config.SEED)
    args = parser.parse_args()
    if not args.catalog.is_dir():
        raise SystemExit(f"{args.catalog}: not found; this benchmark needs the fashion-products dataset")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-text-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        run_measured([*SHOPLENS, "make-dataset", "--catalog", str(args.catalog)], workdir, env)
        run_measured([*SHOPLENS, "build-features"], workdir, env)
        train_seconds, _ = run_measured([*SHOPLENS, "train", "--classmode", "multilabel", "--modelmode", "text"],
                                        workdir, env)
        repository, products = load_repository(workdir)
        without_model, _ = load_repository(workdir, with_text_model=False)
        queries, combos = compose_queries(products, args.seed)

        tuning = []
        for weights in WEIGHT_GRID:
            tuning.append({"weights": weights, **evaluate(shoplens_search(repository, weights), queries["validate"])})
        best = max((r for r in tuning if type_first(r["weights"])), key=lambda r: (r["precision@10"], r["ndcg@10"]))
        best_of_all = max(tuning, key=lambda r: (r["precision@10"], r["ndcg@10"]))
        repository.text_index().weights = dict(config.TEXT_SEARCH_WEIGHTS)

        systems = {"today's search (TF-IDF + 0.5 x category)": lambda split: version_one(repository, queries[split]),
                   "plain BM25 over titles": lambda split: plain_bm25(repository),
                   "shoplens text search, no text model": lambda split: shoplens_search(without_model),
                   "shoplens text search": lambda split: shoplens_search(repository)}
        results = {name: {split: evaluate(make(split), queries[split]) for split in ("validate", "test")}
                   for name, make in systems.items()}
        timings = []
        for query in queries["test"][:100]:
            started = time.perf_counter()
            repository.search_text(query["text"], k=K)
            timings.append(time.perf_counter() - started)
        examples = [{"query": q["text"], "reading": repository.search_text(q["text"], k=K)[0]["text"]}
                    for q in queries["test"][:12]]
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    command = "make benchmark-text-search  (python benchmarks/text_search.py)"
    data = {"command": command, "catalog": str(args.catalog), "products": len(products), "combinations": combos,
            "queries": {s: len(q) for s, q in queries.items()}, "misspelt_share": MISSPELT, "k": K,
            "results": results, "weights": config.TEXT_SEARCH_WEIGHTS, "best_on_validate": best,
            "best_of_all": best_of_all, "tuning": tuning,
            "median_query_ms": round(1000 * median(timings), 2), "text_model_train_seconds": round(train_seconds, 1),
            "examples": examples, "machine": machine()}
    lines = ["| search | P@10 val / test | nDCG@10 val / test | P@10 test: colour queries / usage queries |",
             "|---|---|---|---|"]
    for name, r in results.items():
        lines.append(f"| {name} | {r['validate']['precision@10']:.3f} / **{r['test']['precision@10']:.3f}** | "
                     f"{r['validate']['ndcg@10']:.3f} / {r['test']['ndcg@10']:.3f} | "
                     f"{r['test']['precision@10 colour']:.3f} / {r['test']['precision@10 usage']:.3f} |")
    w = best["weights"]
    markdown = (
        f"# Text search benchmark\n\n`{command}` on {args.catalog.name} ({len(products):,} products), CPU, "
        f"{data['machine']['cpus']} cores. {QUERIES} queries per split composed from the catalog's attributes "
        f"({combos['validate']} attribute combinations for validate, {combos['test']} for test, each with at least "
        f"{MIN_RELEVANT} relevant products; {MISSPELT:.0%} with a misspelt word). Relevant: every attribute and "
        f"the type of the query match. Weights are chosen on validate; test is reported once.\n\n"
        + "\n".join(lines) + "\n\n"
        f"Weights in use (config.TEXT_SEARCH_WEIGHTS): {config.TEXT_SEARCH_WEIGHTS}. Best on validate of the "
        f"{len(WEIGHT_GRID)} compared, among those where title + category >= attributes: title {w['title']}, "
        f"attributes {w['attributes']}, category {w['category']} (P@10 {best['precision@10']:.3f}, nDCG@10 "
        f"{best['ndcg@10']:.3f}); best of all: {best_of_all['weights']} (P@10 {best_of_all['precision@10']:.3f}).\n\n"
        f"Median time of one query (test, shoplens text search, k={K}): {data['median_query_ms']} ms.\n\n"
        "Examples (test):\n\n" + "\n".join(f"- `{e['query']}`: {e['reading']}" for e in examples) + "\n")
    write_report("text_search", data, markdown)


if __name__ == "__main__":
    main()
