"""Benchmark of the classifiers on the real fashion catalog: `make benchmark-models`.

For each GROUP_SPLIT (duplicate groups kept inside one split, and a plain stratified split), in a scratch
project: make-dataset and build-features with default settings, a TF-IDF (word and character n-grams) +
logistic regression baseline on the raw titles, then every model row trained and scored on the validate and
the test split. Settings are compared on validate; test is reported beside it, once. Every accuracy stands
beside the most-frequent-class baseline (and 1/K). Results go to reports/benchmarks/models.json and models.md.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from measure import machine, run_measured, write_report
from scipy.sparse import hstack
from sklearn.dummy import DummyClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from shoplens import config

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FASHION = SHARED / "datasets" / "fashion-products"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
SIMPLE = ["--backbone", "simple", "--weights", "none"]
VIT = ["--backbone", "vit", "--weights", "none", "--vit-patch-size", str(config.VIT_PATCH_SIZE), "--vit-layers",
       str(config.VIT_LAYERS)]
MOBILENET = ["--backbone", "mobilenetv2", "--weights", str(WEIGHTS)]
# Given in full: an option given once is remembered by the project, and would carry into the next rows.
FINETUNED = [*MOBILENET, "--finetune", "--finetune-blocks", str(config.FINETUNE_BLOCKS), "--finetune-epochs",
             str(config.FINETUNE_EPOCHS), "--finetune-learning-rate", str(config.FINETUNE_LEARNING_RATE)]
# name -> (model, train options); rows of one model are trained one after the other and scored at once.
ROWS = {
    "text": ("multilabel_text", ["--classmode", "multilabel", "--modelmode", "text"]),
    "image, small CNN": ("multilabel_image", ["--classmode", "multilabel", "--modelmode", "image", *SIMPLE]),
    "image, ViT from scratch": ("multilabel_image", ["--classmode", "multilabel", "--modelmode", "image", *VIT]),
    "combined, small CNN": ("multilabel_combined", ["--classmode", "multilabel", "--modelmode", "combined", *SIMPLE]),
    "text, multiclass": ("multiclass_text", ["--classmode", "multiclass", "--modelmode", "text"]),
    "image, small CNN, multiclass": ("multiclass_image", ["--classmode", "multiclass", "--modelmode", "image",
                                                          *SIMPLE]),
    "combined, small CNN, multiclass": ("multiclass_combined", ["--classmode", "multiclass", "--modelmode",
                                                                "combined", *SIMPLE]),
    "image, MobileNetV2 frozen": ("multilabel_image", ["--classmode", "multilabel", "--modelmode", "image",
                                                       *MOBILENET, "--frozen"]),
    "image, MobileNetV2 fine-tuned": ("multilabel_image", ["--classmode", "multilabel", "--modelmode", "image",
                                                           *FINETUNED]),
    # The neighbours of the fine-tuning defaults (config.FINETUNE_*), compared on validate; not run by default.
    "image, MobileNetV2 fine-tuned, rate 1e-4": ("multilabel_image", ["--classmode", "multilabel", "--modelmode",
                                                                      "image", *FINETUNED,
                                                                      "--finetune-learning-rate", "1e-4"]),
    "image, MobileNetV2 fine-tuned, 10 epochs": ("multilabel_image", ["--classmode", "multilabel", "--modelmode",
                                                                      "image", *FINETUNED, "--finetune-epochs", "10"]),
    "combined, MobileNetV2 fine-tuned": ("multilabel_combined", ["--classmode", "multilabel", "--modelmode",
                                                                 "combined", *FINETUNED]),
}
# The rows run by default on each kind of split.
DEFAULT_ROWS = {"title,image": ["text", "image, small CNN", "image, ViT from scratch", "combined, small CNN",
                                "image, MobileNetV2 frozen", "image, MobileNetV2 fine-tuned",
                                "combined, MobileNetV2 fine-tuned"],
                "none": ["text", "image, MobileNetV2 fine-tuned"]}
METRICS = ("accuracy", "most_frequent", "random_guess", "balanced_accuracy", "macro_f1", "top5", "ece")


def tfidf_baseline(splits_dir, levels):
    """Accuracy per level and split of TF-IDF word + character n-grams and logistic regression on raw titles."""
    train, validate, test = (pd.read_parquet(splits_dir / f"{s}.parquet") for s in ("train", "validate", "test"))
    words = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2)
    x_train = hstack([words.fit_transform(train["title"]), chars.fit_transform(train["title"])]).tocsr()
    scores = {"validate": {}, "test": {}}
    for name, part in (("validate", validate), ("test", test)):
        x = hstack([words.transform(part["title"]), chars.transform(part["title"])]).tocsr()
        for level in levels:
            classifier = LogisticRegression(C=20, max_iter=2000).fit(x_train, train[level])
            scores[name][level] = float((classifier.predict(x) == part[level]).mean())
    return scores


def most_frequent(splits_dir, levels):
    """The most-frequent-class baseline per level and split, from the train labels."""
    train = pd.read_parquet(splits_dir / "train.parquet")
    out = {}
    for name in ("validate", "test"):
        part = pd.read_parquet(splits_dir / f"{name}.parquet")
        out[name] = {level: float(DummyClassifier(strategy="most_frequent").fit(train[[level]], train[level])
                                  .score(part[[level]], part[level])) for level in levels}
    return out


def benchmark_split(catalog, workdir, group_split, rows, env):
    """Data, features, baselines and every row on one kind of split; the results."""
    from shoplens.models.predict_model import score_model

    run_measured([*SHOPLENS, "make-dataset", "--catalog", str(catalog), "--group-split", group_split], workdir, env)
    run_measured([*SHOPLENS, "build-features"], workdir, env)
    processed = workdir / "data" / "processed"
    summary = json.loads((processed / "splits" / "summary.json").read_text())
    levels = summary["levels"]
    started = time.perf_counter()
    results = {"summary": {k: summary[k] for k in ("splits", "classes_per_level", "duplicates")},
               "tfidf": tfidf_baseline(processed / "splits", levels),
               "most_frequent": most_frequent(processed / "splits", levels), "models": {}}
    results["tfidf_seconds"] = round(time.perf_counter() - started, 1)
    dirs = {"processed_dir": processed, "features_dir": processed / "features", "models_dir": workdir / "models"}
    for row in rows:
        model, options = ROWS[row]
        print(f"[{group_split}] training {row}", flush=True)
        shutil.rmtree(processed / "backbone", ignore_errors=True)  # each row's time includes its caching
        seconds, peak = run_measured([*SHOPLENS, "train", "--force", *options], workdir, env)
        meta = json.loads((workdir / "models" / model / "model.json").read_text())
        classmode, _, modelmode = model.partition("_")
        scored = {split: score_model(classmode, modelmode, split, **dirs)[0] for split in ("validate", "test")}
        results["models"][row] = {
            "model": model, "options": options,
            **{split: {key: scored[split][key] for key in METRICS} for split in scored},
            "unseen_title_accuracy_test": scored["test"].get("unseen_title_accuracy"),
            "train_seconds": round(seconds, 1), "peak_gb": round(peak / 2**30, 2),
            "items_per_second": meta["items_per_second"], "epochs_run": meta["stage_epochs"],
            "backbone_images_per_second": meta.get("backbone_images_per_second"),
            "best_epoch": meta["best_epoch"]}
        if modelmode == "image":
            results["models"][row]["search"] = search_quality(workdir, model, env)
    return results, levels


def search_quality(workdir, model, env):
    """Image search precision@k of the model's embeddings: validate and test products queried against train."""
    from shoplens.models.extract_features import load_features_file
    from shoplens.search.evaluate import search_metrics
    from shoplens.search.index import ExactIndex

    run_measured([*SHOPLENS, "extract-features", "--model", model, "--force"], workdir, env)
    features = load_features_file(workdir / "models" / "embeddings" / "extracted_features.npz",
                                  processed_dir=workdir / "data" / "processed")
    index = ExactIndex(features["embeddings"])
    return {split: {key: value for key, value in search_metrics(features, index, query_split=split).items()
                    if key.startswith(("precision@", "map@", "random"))} for split in ("validate", "test")}


def markdown_table(results, levels):
    header = ("| model | " + " | ".join(f"{level} val / test" for level in levels)
              + f" | balanced acc. {levels[-1]} (test) | macro-F1 {levels[-1]} (test) | search P@5 val / test"
              " | train s | items/s (backbone img/s) |")
    lines = [header, "|" + "---|" * (len(levels) + 6)]
    for name in ("most_frequent", "tfidf"):
        label = {"most_frequent": "most frequent class", "tfidf": "TF-IDF + logistic regression (titles)"}[name]
        cells = " | ".join(f"{results[name]['validate'][lv]:.3f} / {results[name]['test'][lv]:.3f}" for lv in levels)
        lines.append(f"| {label} | {cells} | | | | | |")
    for row, r in results["models"].items():
        cells = " | ".join(f"{r['validate']['accuracy'][lv]:.3f} / {r['test']['accuracy'][lv]:.3f}" for lv in levels)
        search = (f"{r['search']['validate']['precision@5']:.3f} / {r['search']['test']['precision@5']:.3f}"
                  if "search" in r else "")
        speed = f"{r['items_per_second']:.0f}" + (f" ({r['backbone_images_per_second']:.0f})"
                                                  if r.get("backbone_images_per_second") else "")
        lines.append(f"| {row} | {cells} | {r['test']['balanced_accuracy'][levels[-1]]:.3f} | "
                     f"{r['test']['macro_f1'][levels[-1]]:.3f} | {search} | {r['train_seconds']:.0f} | {speed} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    parser.add_argument("--group-splits", default=";".join(DEFAULT_ROWS),
                        help="GROUP_SPLIT values to run, separated by ';'")
    parser.add_argument("--rows", default=None, help=f"rows to run, separated by ';', from: {'; '.join(ROWS)}")
    args = parser.parse_args()
    if not args.catalog.is_dir():
        raise SystemExit(f"{args.catalog}: not found; this benchmark needs the fashion-products dataset")
    group_splits = args.group_splits.split(";")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-models-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runs = {}
    try:
        for group_split in group_splits:
            rows = args.rows.split(";") if args.rows else DEFAULT_ROWS.get(group_split, DEFAULT_ROWS["title,image"])
            runs[group_split], levels = benchmark_split(args.catalog, workdir, group_split, rows, env)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    command = "make benchmark-models  (python benchmarks/models.py)"
    data = {"command": command, "catalog": str(args.catalog), "runs": runs, "machine": machine()}
    sections = []
    for group_split, results in runs.items():
        s = results["summary"]
        dup = s["duplicates"]
        sections.append(
            f"## GROUP_SPLIT={group_split}\n\nSplits {s['splits']}; classes per level {s['classes_per_level']}; "
            f"{dup['groups']:,} duplicate groups, {dup['items_in_shared_groups']:,} items in shared groups, "
            f"{dup.get('test_items_with_a_train_title', 0):,} test items whose title is also in train.\n\n"
            + markdown_table(results, levels) + "\n")
    markdown = (f"# Models benchmark\n\n`{command}` on {args.catalog.name}, CPU, {data['machine']['cpus']} cores "
                f"(load average {data['machine']['load_average']} at the end). Accuracy per level on the validate / "
                f"test split; settings are compared "
                f"on validate, test is reported once. 1/K per level: "
                + ", ".join(f"{1 / n:.3f}" for n in s["classes_per_level"].values()) + ".\n\n"
                + "\n".join(sections))
    write_report("models", data, markdown)


if __name__ == "__main__":
    main()
