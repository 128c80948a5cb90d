"""Benchmark of the classifiers on the real fashion catalog: `make benchmark-models`.

Runs `make data` and `make features` with default settings on
../shared/datasets/fashion-products, trains and evaluates the image, text and
combined models in both class modes, and compares the text model with a TF-IDF
(word and character n-grams) + logistic regression baseline trained on the same
split in the same run. Results go to reports/benchmarks/models.json and models.md.
"""
import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from measure import machine, run_measured, write_report
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
FASHION = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fashion-products"
MODES = [(c, m) for c in ("multilabel", "multiclass") for m in ("text", "image", "combined")]
MAX_TRAIN_SECONDS = 15 * 60
IMAGE_LEVEL3_TARGET = 0.78


def tfidf_baseline(processed, levels):
    """Accuracy per level of TF-IDF word + character n-grams and logistic regression on raw titles."""
    train, test = (pd.read_parquet(processed / "splits" / f"{s}.parquet") for s in ("train", "test"))
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    x_train = hstack([words.fit_transform(train["title"]), chars.fit_transform(train["title"])]).tocsr()
    x_test = hstack([words.transform(test["title"]), chars.transform(test["title"])]).tocsr()
    accuracy = {}
    for level in levels:
        classifier = LogisticRegression(C=20, max_iter=2000).fit(x_train, train[level])
        accuracy[level] = float((classifier.predict(x_test) == test[level]).mean())
    return accuracy


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    parser.add_argument("--modes", default=",".join(f"{c}_{m}" for c, m in MODES),
                        help="comma-separated <classmode>_<modelmode> to run")
    args = parser.parse_args()
    if not args.catalog.is_dir():
        raise SystemExit(f"{args.catalog}: not found; this benchmark needs the fashion-products dataset")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-models-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir), "TF_CPP_MIN_LOG_LEVEL": "3"}
    try:
        run_measured([*SHOPLENS, "make-dataset", "--catalog", str(args.catalog)], workdir, env)
        run_measured([*SHOPLENS, "build-features"], workdir, env)
        processed = workdir / "data" / "processed"
        summary = json.loads((processed / "splits" / "summary.json").read_text())
        levels = summary["levels"]
        started = time.perf_counter()
        baseline = tfidf_baseline(processed, levels)
        baseline_seconds = time.perf_counter() - started

        results = {}
        for name in args.modes.split(","):
            classmode, modelmode = name.split("_")
            print(f"training {name}", flush=True)
            options = ["--classmode", classmode, "--modelmode", modelmode, "--backbone", "simple", "--weights", "none"]
            seconds, peak = run_measured([*SHOPLENS, "train", *options], workdir, env)
            run_measured([*SHOPLENS, "evaluate", "--classmode", classmode, "--modelmode", modelmode], workdir, env)
            metrics = json.loads((workdir / "reports" / args.catalog.name / name / "metrics.json").read_text())
            meta = json.loads((workdir / "models" / name / "model.json").read_text())
            results[name] = {"accuracy": metrics["accuracy"], "random_guess": metrics["random_guess"],
                             "macro_f1": metrics["macro_f1"], "top5": metrics["top5"],
                             "train_seconds": round(seconds, 1), "peak_gb": round(peak / 2**30, 2),
                             "items_per_second": meta["items_per_second"], "epochs_run": meta["epochs_run"],
                             "best_epoch": meta["best_epoch"]}
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    checks = {}
    last = levels[-1]
    if "multilabel_text" in results:
        checks["text >= tfidf baseline - 0.005 at every level"] = all(
            results["multilabel_text"]["accuracy"][lv] >= baseline[lv] - 0.005 for lv in levels)
    if "multilabel_image" in results:
        checks[f"image {last} >= {IMAGE_LEVEL3_TARGET}"] = results["multilabel_image"]["accuracy"][last] >= \
            IMAGE_LEVEL3_TARGET
    if {"multilabel_text", "multilabel_image", "multilabel_combined"} <= set(results):
        best_single = max(results["multilabel_text"]["accuracy"][last], results["multilabel_image"]["accuracy"][last])
        checks[f"combined {last} >= better single tower"] = results["multilabel_combined"]["accuracy"][last] >= \
            best_single
    checks["every training <= 15 min"] = all(r["train_seconds"] <= MAX_TRAIN_SECONDS for r in results.values())

    command = "make benchmark-models  (python benchmarks/models.py)"
    data = {"command": command, "catalog": str(args.catalog), "splits": summary["splits"],
            "classes_per_level": summary["classes_per_level"], "tfidf_baseline": baseline,
            "tfidf_baseline_seconds": round(baseline_seconds, 1), "models": results, "checks": checks,
            "machine": machine()}
    header = "| model | " + " | ".join(levels) + " | average | macro-F1 (avg) | top-5 (avg) | train s | items/s |"
    lines = [header, "|" + "---|" * (len(levels) + 6)]
    lines.append("| TF-IDF + logistic regression (titles) | " + " | ".join(f"{baseline[lv]:.3f}" for lv in levels)
                 + f" | {sum(baseline.values()) / len(levels):.3f} | | | {baseline_seconds:.0f} | |")
    for name, r in results.items():
        acc = r["accuracy"]
        lines.append(f"| {name} | " + " | ".join(f"{acc[lv]:.3f} / {r['random_guess'][lv]:.3f}" for lv in levels)
                     + f" | {acc['average']:.3f} | {r['macro_f1']['average']:.3f} | {r['top5']['average']:.3f}"
                     f" | {r['train_seconds']:.0f} | {r['items_per_second']:.0f} |")
    checks_md = "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items())
    markdown = (f"# Models benchmark\n\n`{command}` on {args.catalog.name} (test split: {summary['splits']['test']:,} "
                f"items; classes per level: {summary['classes_per_level']}), CPU, {data['machine']['cpus']} cores.\n"
                "Accuracy per level: model / random guess. Image towers use `BACKBONE=simple WEIGHTS=none`.\n\n"
                + "\n".join(lines) + "\n\n" + checks_md + "\n")
    write_report("models", data, markdown)


if __name__ == "__main__":
    main()
