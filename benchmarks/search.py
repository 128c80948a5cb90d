"""Benchmark of the search: `make benchmark-search`.

1. Speed on clustered unit vectors (Gaussian clusters around random centres, normalised), 512 dimensions,
   against ``sklearn.neighbors.NearestNeighbors(metric="cosine", algorithm="brute")`` on the same vectors,
   median latencies measured side by side, one query at a time:
   * ``--n-small`` (100,000) vectors: the exact index's single-query latency, batch throughput and resident
     memory (the growth of this process while loading the vectors from disk into the index and querying it);
     the same for ``INDEX_PRECISION=int8`` beside float32, both on one thread as the gallery runs them, in
     alternating blocks of all the queries, with int8's recall@10 against float32;
   * ``--n-large`` (1,000,000) vectors: the FAISS index's build time, recall@10 against exact search and
     single-query latency, at the configured ``FAISS_NPROBE`` and a few others.
2. Quality on ../shared/datasets/fashion-products (skipped if absent): precision@5 of the image search
   (multilabel_image, simple backbone, no pretrained weights, default data and features settings, trained in a
   scratch project) against a raw-pixel baseline (16x16 thumbnails as embeddings), same split, same metric;
   and on that model's embeddings, every product a query, the recall@10 of int8 and of FAISS (its default
   lists for the catalog's size, several nprobe) against float32.

Results go to reports/benchmarks/search.json and search.md.
"""
import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
from measure import machine, median, run_measured, write_report
from PIL import Image
from sklearn.neighbors import NearestNeighbors
from threadpoolctl import threadpool_limits

from shoplens import config
from shoplens.search.index import ExactIndex, FaissIndex, Int8Index, load_index, save_index

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
FASHION = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fashion-products"
DIM = 512
K = 10
TARGETS = {"exact_latency_ms": 10.0, "exact_memory_ratio": 1.5, "faiss_recall": 0.95, "faiss_latency_ms": 2.0,
           "precision_gain": 0.15, "int8_latency_ratio": 0.6, "int8_recall": 0.999, "int8_memory_ratio": 0.55}


def clustered_vectors(n, dim=DIM, seed=0, chunk=100_000):
    """``n`` unit vectors around ``n // 1000`` random centres, each cluster with its own spread."""
    rng = np.random.default_rng(seed)
    clusters = max(10, n // 1000)
    centres = rng.standard_normal((clusters, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    # Noise as long as the centre or up to twice as long: a product is about as close to its cluster's
    # centre as two products of a cluster are to each other, as in trained embeddings.
    spread = rng.uniform(1.0, 2.0, clusters).astype(np.float32) / np.sqrt(dim)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        labels = rng.integers(0, clusters, stop - start)
        x = centres[labels] + rng.standard_normal((stop - start, dim), dtype=np.float32) * spread[labels, None]
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def latencies(search, queries):
    """Milliseconds of each single-query call."""
    times = []
    for query in queries:
        started = time.perf_counter()
        search(query[None])
        times.append((time.perf_counter() - started) * 1000)
    return times


def side_by_side(ours, baseline, queries, n_baseline):
    """Median single-query latency of ``ours`` on every query, then of ``baseline`` on the first ``n_baseline``.

    One after the other rather than alternating: the baseline copies all the vectors for every query (to
    normalise them), which would push ours out of the CPU caches between two of its queries.
    """
    return median(latencies(ours, queries)), median(latencies(baseline, queries[:n_baseline]))


def rss():
    gc.collect()
    return psutil.Process().memory_info().rss


def small_scale(n, queries_n, workdir):
    print(f"exact search on {n:,} x {DIM} vectors, float32 and int8", flush=True)
    data = clustered_vectors(n + queries_n, seed=1)
    vectors, queries = data[:n], data[n:]
    path = workdir / "vectors.npy"
    np.save(path, vectors)
    save_index(Int8Index.build(vectors), "synthetic", workdir / "search_index.json")
    # Each index as the repository holds it, loaded from disk and searched: the float32 one is the embeddings
    # themselves; the int8 one reads its codes, and only the rows it rescores from the float32 file.
    memory = {}
    for precision, load in (("float32", lambda: ExactIndex(np.load(path))),
                            ("int8", lambda: load_index(np.load(path, mmap_mode="r"), "synthetic",
                                                        workdir / "search_index.json"))):
        before = rss()
        index = load()
        for query in queries[:20]:
            index.search(query[None], K)
        memory[precision] = rss() - before
        del index
    index, compact = ExactIndex(np.load(path)), load_index(vectors, "synthetic", workdir / "search_index.json")
    truth = index.search(queries, K)[1]
    found = compact.search(queries, K)[1]
    compact_recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
    sklearn = NearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute").fit(vectors)
    for query in queries[:3]:  # warm up all three
        index.search(query[None], K)
        compact.search(query[None], K)
        sklearn.kneighbors(query[None])
    ours = median(latencies(lambda q: index.search(q, K), queries))
    # float32 against int8 with one thread each, as `shoplens serve` runs a query (int8 scans in the thread
    # that asked; the server limits BLAS to one thread): float32, int8, float32, int8 over all the queries, so
    # both see the same spells of the machine.
    float32_ms, int8_ms = [], []
    with threadpool_limits(1, user_api="blas"):
        for _ in range(2):
            float32_ms += latencies(lambda q: index.search(q, K), queries)
            int8_ms += latencies(lambda q: compact.search(q, K), queries)
    float32_ms, int8_ms = median(float32_ms), median(int8_ms)
    theirs = median(latencies(lambda q: sklearn.kneighbors(q), queries[:50]))

    batch = queries[:1000]
    started = time.perf_counter()
    index.search(batch, K)
    ours_qps = len(batch) / (time.perf_counter() - started)
    started = time.perf_counter()
    sklearn.kneighbors(batch)
    theirs_qps = len(batch) / (time.perf_counter() - started)
    return {"n": n, "dim": DIM, "latency_ms": round(ours, 2), "sklearn_latency_ms": round(theirs, 2),
            "speedup": round(theirs / ours, 1), "batch_queries": len(batch), "batch_qps": round(ours_qps),
            "sklearn_batch_qps": round(theirs_qps), "memory_mb": round(memory["float32"] / 2**20, 1),
            "vector_mb": round(vectors.nbytes / 2**20, 1), "memory_ratio": round(memory["float32"] / vectors.nbytes, 3),
            "int8": {"latency_ms": round(int8_ms, 2), "float32_latency_ms": round(float32_ms, 2),
                     "latency_ratio": round(int8_ms / float32_ms, 3), "threads": 1,
                     "memory_mb": round(memory["int8"] / 2**20, 1),
                     "memory_ratio": round(memory["int8"] / memory["float32"], 3),
                     "recall_at_10": round(compact_recall, 4), "rescored": Int8Index.RESCORED * K}}


def real_recall(features, nprobes):
    """recall@10 of the int8 and FAISS indexes against float32 on a catalog's embeddings, every item a query."""
    vectors = features["embeddings"]
    print(f"recall@{K} on the catalog's {len(vectors):,} x {vectors.shape[1]} embeddings", flush=True)

    def neighbours(index):  # the query itself left out
        found = index.search(vectors, K + 1)[1]
        return [[j for j in row if j != i][:K] for i, row in enumerate(found)]

    truth = neighbours(ExactIndex(vectors))

    def recall(index):
        return round(float(np.mean([len(set(f) & set(t)) / K for f, t in zip(neighbours(index), truth)])), 4)

    faiss_index = FaissIndex.build(vectors)
    by_nprobe = {}
    for nprobe in sorted(set(nprobes) | {config.FAISS_NPROBE}):
        faiss_index.nprobe = nprobe
        by_nprobe[nprobe] = recall(faiss_index)
    return {"items": len(vectors), "dim": int(vectors.shape[1]), "int8_recall_at_10": recall(Int8Index.build(vectors)),
            "faiss_nlist": faiss_index.index.nlist, "faiss_recall_by_nprobe": by_nprobe}


def large_scale(n, queries_n, nprobes):
    print(f"FAISS on {n:,} x {DIM} vectors", flush=True)
    data = clustered_vectors(n + queries_n, seed=2)
    vectors, queries = data[:n], data[n:]
    exact = ExactIndex(vectors)
    truth = exact.search(queries, K, batch_size=64)[1]

    before = rss()
    started = time.perf_counter()
    index = FaissIndex.build(vectors)
    build_seconds = time.perf_counter() - started
    memory = rss() - before
    results = {}
    for nprobe in sorted(set(nprobes) | {config.FAISS_NPROBE}):
        index.nprobe = nprobe
        found = np.concatenate([index.search(q[None], K)[1] for q in queries])
        recall = float(np.mean([len(set(f) & set(t)) / K for f, t in zip(found, truth)]))
        results[nprobe] = {"recall": round(recall, 4), "latency_ms": round(median(latencies(
            lambda q: index.search(q, K), queries)), 3)}
        print(f"  nprobe {nprobe}: recall@{K} {recall:.3f}, {results[nprobe]['latency_ms']:.2f} ms", flush=True)
    index.nprobe = config.FAISS_NPROBE

    sklearn = NearestNeighbors(n_neighbors=K, metric="cosine", algorithm="brute").fit(vectors)
    sample = queries[:10]
    faiss_ms, sklearn_ms = side_by_side(lambda q: index.search(q, K), lambda q: sklearn.kneighbors(q), sample, 10)
    exact_ms = median(latencies(lambda q: exact.search(q, K), sample))
    default = results[config.FAISS_NPROBE]
    return {"n": n, "dim": DIM, "nlist": index.index.nlist, "nprobe": config.FAISS_NPROBE,
            "build_seconds": round(build_seconds, 1), "memory_mb": round(memory / 2**20),
            "recall_at_10": default["recall"], "latency_ms": default["latency_ms"],
            "latency_ms_side_by_side": round(faiss_ms, 3), "exact_latency_ms": round(exact_ms, 1),
            "sklearn_latency_ms": round(sklearn_ms, 1), "speedup": round(sklearn_ms / default["latency_ms"]),
            "by_nprobe": results, "queries": len(queries)}


def catalog_quality(catalog, workdir, nprobes):
    """precision@5 of the image search and of raw 16x16 pixels on the fashion catalog's test split, and the
    recall of the int8 and FAISS indexes on its embeddings."""
    print(f"image search quality on {catalog}", flush=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    train = ["train", "--classmode", "multilabel", "--modelmode", "image", "--backbone", "simple", "--weights", "none"]
    steps = [["make-dataset", "--catalog", str(catalog)], ["build-features"], train, ["extract-features"],
             ["build-index"], ["evaluate-search"]]
    seconds = {}
    for command in steps:  # a kept --workdir resumes where it stopped: stages up to date are not run again
        seconds[command[0]], _ = run_measured([*SHOPLENS, *command], workdir, env)
    model = json.loads((workdir / "reports" / catalog.name / "search" / "metrics.json").read_text())

    from shoplens.features.build_features import load_images
    from shoplens.models.extract_features import load_features_file, normalise
    from shoplens.search.evaluate import search_metrics

    processed = workdir / "data" / "processed"
    features = load_features_file(workdir / "models" / "embeddings" / "extracted_features.npz",
                                  processed_dir=processed)
    images = np.concatenate([load_images(s, processed / "features") for s in config.SPLITS])
    thumbs = np.stack([np.asarray(Image.fromarray(image).resize((16, 16), Image.Resampling.BOX), np.float32).ravel()
                       for image in images])
    baselines = {}
    for name, vectors in (("raw pixels", thumbs), ("raw pixels, centred", thumbs - thumbs.mean(axis=0))):
        pixels = normalise(vectors)
        baselines[name] = search_metrics({**features, "embeddings": pixels}, ExactIndex(pixels))
    best = max(baselines, key=lambda b: baselines[b]["precision@5"])
    return {"catalog": str(catalog), "queries": model["queries"], "candidates": model["candidates"],
            "model": {key: model[key] for key in ("precision@1", "precision@5", "precision@10", "map@10")},
            "baselines": {name: {key: b[key] for key in ("precision@1", "precision@5", "precision@10", "map@10")}
                          for name, b in baselines.items()},
            "best_baseline": best, "random_precision": model["random_precision"],
            "gain": round(model["precision@5"] - baselines[best]["precision@5"], 4),
            "recall": real_recall(features, nprobes),
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-small", type=int, default=100_000, help="vectors for the exact index")
    parser.add_argument("--n-large", type=int, default=1_000_000, help="vectors for the FAISS index")
    parser.add_argument("--queries", type=int, default=200, help="queries per measurement")
    parser.add_argument("--nprobes", default="4,8,16,32", help="FAISS lists scanned per query, to compare")
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="scratch project for the catalog part, kept and resumed [default: a temporary one]")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="shoplens-bench-search-"))
    try:
        small = small_scale(args.n_small, args.queries, scratch)
        nprobes = [int(v) for v in args.nprobes.split(",")]
        large = large_scale(args.n_large, args.queries, nprobes)
        quality = None
        if args.catalog.is_dir():
            workdir = args.workdir or scratch / "project"
            workdir.mkdir(parents=True, exist_ok=True)
            quality = catalog_quality(args.catalog, workdir, nprobes)
        else:
            print(f"{args.catalog}: not found; skipping the catalog quality part", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    checks = {
        f"exact search on {small['n']:,}: median latency <= {TARGETS['exact_latency_ms']:.0f} ms":
            small["latency_ms"] <= TARGETS["exact_latency_ms"],
        f"exact search on {small['n']:,}: memory <= {TARGETS['exact_memory_ratio']}x the vectors":
            small["memory_ratio"] <= TARGETS["exact_memory_ratio"],
        f"int8 exact search on {small['n']:,}: median latency <= {TARGETS['int8_latency_ratio']}x float32's":
            small["int8"]["latency_ratio"] <= TARGETS["int8_latency_ratio"],
        f"int8 exact search on {small['n']:,}: recall@10 >= {TARGETS['int8_recall']} against float32":
            small["int8"]["recall_at_10"] >= TARGETS["int8_recall"],
        f"int8 exact search on {small['n']:,}: resident memory <= {TARGETS['int8_memory_ratio']}x float32's":
            small["int8"]["memory_ratio"] <= TARGETS["int8_memory_ratio"],
        f"FAISS on {large['n']:,}: recall@10 >= {TARGETS['faiss_recall']}":
            large["recall_at_10"] >= TARGETS["faiss_recall"],
        f"FAISS on {large['n']:,}: median latency <= {TARGETS['faiss_latency_ms']:.0f} ms":
            large["latency_ms"] <= TARGETS["faiss_latency_ms"],
    }
    if quality:
        checks[f"image search precision@5 >= best raw-pixel baseline + {TARGETS['precision_gain']}"] = \
            quality["gain"] >= TARGETS["precision_gain"]
        checks[f"int8 exact search on {Path(quality['catalog']).name}'s embeddings: recall@10 >= "
               f"{TARGETS['int8_recall']} against float32"] = \
            quality["recall"]["int8_recall_at_10"] >= TARGETS["int8_recall"]

    command = f"make benchmark-search  (python benchmarks/search.py --n-small {args.n_small} --n-large {args.n_large})"
    # Other work on the machine slows the memory-bound scans: the load says how much there was.
    load = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    data = {"command": command, "small": small, "large": large, "catalog": quality, "checks": checks,
            "machine": machine(), "load_average_start_end": load}
    lines = [
        f"| exact, {small['n']:,} x {DIM} | single query, median | {small['latency_ms']:.2f} ms | "
        f"{small['sklearn_latency_ms']:.1f} ms | {small['speedup']}x |",
        f"| exact, {small['n']:,} x {DIM} | batch of {small['batch_queries']:,} | {small['batch_qps']:,} queries/s | "
        f"{small['sklearn_batch_qps']:,} queries/s | {small['batch_qps'] / small['sklearn_batch_qps']:.1f}x |",
        f"| exact, {small['n']:,} x {DIM} | resident memory | {small['memory_mb']:.0f} MB "
        f"({small['memory_ratio']:.2f}x the {small['vector_mb']:.0f} MB of vectors) | | |",
        f"| exact int8 (rescoring {small['int8']['rescored']} in float32), {small['n']:,} x {DIM} | single query, "
        f"median, one thread | {small['int8']['latency_ms']:.2f} ms against float32's "
        f"{small['int8']['float32_latency_ms']:.2f} ms ({small['int8']['latency_ratio']:.2f}x, same run; recall@10 "
        f"{small['int8']['recall_at_10']:.4f}) | | |",
        f"| exact int8, {small['n']:,} x {DIM} | resident memory | {small['int8']['memory_mb']:.0f} MB "
        f"({small['int8']['memory_ratio']:.2f}x float32's) | | |",
        f"| exact, {large['n']:,} x {DIM} | single query, median | {large['exact_latency_ms']:.1f} ms | "
        f"{large['sklearn_latency_ms']:.0f} ms | {large['sklearn_latency_ms'] / large['exact_latency_ms']:.1f}x |",
        f"| FAISS IVF{large['nlist']},Flat nprobe {large['nprobe']}, {large['n']:,} x {DIM} | single query, median | "
        f"{large['latency_ms']:.2f} ms (recall@10 {large['recall_at_10']:.3f}) | {large['sklearn_latency_ms']:.0f} ms"
        f" | {large['speedup']:,}x |",
        f"| FAISS, {large['n']:,} x {DIM} | build (train + add), memory | {large['build_seconds']:.0f} s, "
        f"{large['memory_mb']:,} MB | | |",
    ]
    sweep = "\n".join(f"| {p} | {r['recall']:.3f} | {r['latency_ms']:.2f} |" for p, r in large["by_nprobe"].items())
    markdown = (f"# Search benchmark\n\n`{command}`, CPU, {data['machine']['cpus']} cores (load average "
                f"{load[0]} at the start, {load[1]} at the end). Clustered unit vectors "
                f"({large['queries']} held-out queries of the same distribution), k = {K}; the baseline is "
                "`NearestNeighbors(metric=\"cosine\", algorithm=\"brute\")` on the same vectors, timed right after "
                "ours.\n\n| index | measure | shoplens | scikit-learn | speed-up |\n|---|---|---|---|---|\n"
                + "\n".join(lines) + f"\n\nFAISS nprobe (of {large['nlist']} lists) against recall@10 and "
                f"median latency on {large['n']:,} vectors:\n\n| nprobe | recall@10 | ms |\n|---|---|---|\n"
                + sweep + "\n")
    if quality:
        metrics = ("precision@1", "precision@5", "precision@10", "map@10")
        named = {"multilabel_image (simple CNN, no pretrained weights)": quality["model"],
                 **{f"{name} (16x16 thumbnails)": b for name, b in quality["baselines"].items()}}
        rows = [f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in metrics) + " |" for name, m in named.items()]
        markdown += (f"\nImage search on {Path(quality['catalog']).name}: {quality['queries']:,} test products "
                     f"queried against {quality['candidates']:,} train products, relevant = same product_details "
                     f"(random ranking: {quality['random_precision']:.3f}).\n\n"
                     "| embeddings | precision@1 | precision@5 | precision@10 | mAP@10 |\n|---|---|---|---|---|\n"
                     + "\n".join(rows) + "\n")
        real = quality["recall"]
        faiss_rows = "\n".join(f"| FAISS IVF{real['faiss_nlist']},Flat nprobe {p} | {r:.4f} |"
                                for p, r in real["faiss_recall_by_nprobe"].items())
        markdown += (f"\nrecall@10 against float32 exact search on the {real['items']:,} x {real['dim']} embeddings "
                     "of that model, every product a query (itself left out):\n\n| index | recall@10 |\n|---|---|\n"
                     f"| exact int8, rescoring {Int8Index.RESCORED * K} in float32 | "
                     f"{real['int8_recall_at_10']:.4f} |\n"
                     + faiss_rows + "\n")
    markdown += "\n" + "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items()) + "\n"
    write_report("search", data, markdown)


if __name__ == "__main__":
    main()
