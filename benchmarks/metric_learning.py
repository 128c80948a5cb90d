"""Benchmark of normalised softmax against softmax for search: `make benchmark-metric-learning`.

In a scratch project on the fashion catalog with UNSEEN=1 (20 % of the last level's categories held out of every
split a model learns from), the search image model is trained with LOSS=softmax and LOSS=normsoftmax on each
backbone (the small CNN from scratch; MobileNetV2 on the ImageNet weights of ../shared/weights/, frozen, and
fine-tuned as FINETUNE=1 does), each pair with the same options and epochs. On a 2-core CPU the fine-tuned rows alone
took 48 minutes, extraction included (`--backbones` picks rows). For each: precision@5 of the test products queried
against the train ones (seen categories), and Recall@1/5/10 and MAP@R of the unseen products queried against each
other, beside a random ranking's figures. No setting is chosen here: the temperature is the paper's.
Results go to reports/benchmarks/metric_learning.json and metric_learning.md.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from measure import machine, run_measured, write_report

from shoplens import config

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FASHION = SHARED / "datasets" / "fashion-products"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
MODEL = "multilabel_image"
# Every option given in full: a project remembers what it was given, and would carry it into the next row.
BACKBONES = {
    "small CNN, 64 px": ["--backbone", "simple", "--weights", "none", "--epochs", "16"],
    "MobileNetV2 frozen, 224 px": ["--backbone", "mobilenetv2", "--weights", str(WEIGHTS), "--frozen",
                                   "--epochs", str(config.EPOCHS)],
    "MobileNetV2 fine-tuned, 224 px": ["--backbone", "mobilenetv2", "--weights", str(WEIGHTS), "--finetune",
                                       "--epochs", str(config.EPOCHS)],
}
LOSSES = {"softmax": ["--loss", "softmax"],
          "normsoftmax": ["--loss", "normsoftmax", "--temperature", str(config.TEMPERATURE),
                          "--margin", str(config.MARGIN)]}


def retrieval(workdir, env):
    """Seen-category precision@k (test against train) and unseen-category Recall@k and MAP@R of the last model."""
    from shoplens.models.extract_features import load_features_file
    from shoplens.search.evaluate import search_metrics, unseen_metrics
    from shoplens.search.index import ExactIndex

    seconds, _ = run_measured([*SHOPLENS, "extract-features", "--model", MODEL, "--force"], workdir, env)
    features = load_features_file(workdir / "models" / "embeddings" / "extracted_features.npz",
                                  processed_dir=workdir / "data" / "processed")
    index = ExactIndex(features["embeddings"])
    seen = search_metrics(features, index)
    return {"seen": {key: value for key, value in seen.items() if key.startswith(("precision@", "map@", "random"))},
            "unseen": unseen_metrics(features, index), "extract_seconds": round(seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    parser.add_argument("--backbones", default=";".join(BACKBONES), help="backbones to run, separated by ';'")
    args = parser.parse_args()
    if not args.catalog.is_dir():
        raise SystemExit(f"{args.catalog}: not found; this benchmark needs the fashion-products dataset")
    backbones = args.backbones.split(";")
    if any("MobileNetV2" in b for b in backbones) and not WEIGHTS.is_file():
        raise SystemExit(f"{WEIGHTS}: not found; run with --backbones 'small CNN, 64 px' without it")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-metric-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    rows, load_at_start = {}, os.getloadavg()[0]
    try:
        run_measured([*SHOPLENS, "make-dataset", "--catalog", str(args.catalog), "--unseen"], workdir, env)
        run_measured([*SHOPLENS, "build-features"], workdir, env)
        summary = json.loads((workdir / "data" / "processed" / "splits" / "summary.json").read_text())
        for backbone in backbones:
            for loss, loss_options in LOSSES.items():
                print(f"training {backbone}, {loss}", flush=True)
                seconds, _ = run_measured([*SHOPLENS, "train", "--force", "--classmode", "multilabel", "--modelmode",
                                           "image", *BACKBONES[backbone], *loss_options], workdir, env)
                meta = json.loads((workdir / "models" / MODEL / "model.json").read_text())
                rows[f"{backbone}, {loss}"] = {"backbone": backbone, "loss": loss, "options": meta["options"],
                                               "train_seconds": round(seconds, 1), "epochs_run": meta["epochs_run"],
                                               **retrieval(workdir, env)}
                print(json.dumps(rows[f"{backbone}, {loss}"]["unseen"]), flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    checks = {}
    for backbone in backbones:
        plain, norm = rows[f"{backbone}, softmax"], rows[f"{backbone}, normsoftmax"]
        checks[f"{backbone}: precision@5 on seen categories +2 points or more"] = (
            norm["seen"]["precision@5"] >= plain["seen"]["precision@5"] + 0.02)
        checks[f"{backbone}: Recall@1 on unseen categories +5 points or more"] = (
            norm["unseen"]["recall@1"] >= plain["unseen"]["recall@1"] + 0.05)
    command = "make benchmark-metric-learning  (python benchmarks/metric_learning.py)"
    data = {"command": command, "catalog": str(args.catalog), "splits": summary["splits"],
            "unseen_classes": summary["unseen_classes"], "rows": rows, "checks": checks, "machine": machine()}
    lines = ["| model | loss | seen P@5 (test) | seen mAP@10 | unseen R@1 | R@5 | R@10 | MAP@R | train s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows.values():
        s, u = r["seen"], r["unseen"]
        lines.append(f"| {r['backbone']} | {r['loss']} | {s['precision@5']:.3f} | {s['map@10']:.3f} | "
                     f"{u['recall@1']:.3f} | {u['recall@5']:.3f} | {u['recall@10']:.3f} | {u['map@r']:.3f} | "
                     f"{r['train_seconds']:.0f} |")
    first = next(iter(rows.values()))
    markdown = (
        f"# Metric learning benchmark: normalised softmax against softmax\n\n`{command}` on {args.catalog.name}, "
        f"CPU, {data['machine']['cpus']} cores, load average {load_at_start:.1f} at the start and "
        f"{os.getloadavg()[0]:.1f} at the end (train seconds are only as good as that). Splits "
        f"{summary['splits']}: the {len(summary['unseen_classes'])} categories of the unseen split "
        f"({', '.join(summary['unseen_classes'])}) are in no split a model learns from.\n\n"
        f"Seen: the test products queried against the train products (relevant: same {summary['levels'][-1]}); "
        f"random ranking P@5 {first['seen']['random_precision']:.3f}. Unseen: each unseen product queried against "
        f"the other {first['unseen']['queries'] - 1:,} (Recall@k: a product of its category among the k nearest; "
        f"MAP@R); random ranking R@1 {first['unseen']['random_recall@1']:.3f}. Temperature {config.TEMPERATURE}, "
        f"margin {config.MARGIN}.\n\n" + "\n".join(lines) + "\n\n"
        + "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items()) + "\n")
    write_report("metric_learning", data, markdown)


if __name__ == "__main__":
    main()
