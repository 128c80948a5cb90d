"""Benchmark of object-centred crops (CROP=auto): `make benchmark-crops`.

A demo catalog of ``--n`` (1,000) items, ``--clutter`` (half) of whose photos show the product small and
off-centre on a busy background, with no planted errors, seed ``--seed`` (7: the thresholds of
shoplens.models.localise were chosen on the catalog of seed 42), goes through the shoplens commands in a
scratch project, and the image model is trained as `make demo` trains it (BACKBONE=simple, WEIGHTS=none,
EPOCHS=16). Then:

1. Localisation: the box CROP=auto finds in every item's photo (all splits, as the model reads it), by
   contrast where the background is plain and by the model's activation maps elsewhere, against the true box
   the generator recorded: the share of items with IoU >= 0.5 (target: 80 %), of the studio and of the
   cluttered photos, beside the whole photo as the box (what CROP=none reads) and each way alone.
2. Retrieval: `shoplens evaluate-search` (every test product queried against the train products, the same
   product_details relevant) on embeddings made with CROP=none and with CROP=auto, beside random ranking
   (target: precision@5 10 points higher with the crops).

Results go to reports/benchmarks/crops.json and crops.md.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from measure import machine, run_measured, write_report

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
TARGETS = {"iou_share": 0.8, "precision_gain": 0.10}


def build_project(project, n, clutter, seed, epochs):
    """The scratch project, its demo catalog and image model; seconds per command."""
    env = {"SHOPLENS_PROJECT_DIR": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    steps = [["params", "BACKBONE=simple", "WEIGHTS=none"],  # no 224-pixel images for a pretrained backbone
             ["demo-catalog", "--n", str(n), "--seed", str(seed), "--planted", "0", "--clutter", str(clutter)],
             ["make-dataset", "--catalog", "demo"],
             ["build-features"],
             ["train", "--classmode", "multilabel", "--modelmode", "image", "--backbone", "simple", "--weights",
              "none", "--epochs", str(epochs)]]
    seconds = {}
    for step in steps:
        print("shoplens", " ".join(step), flush=True)
        seconds[step[0]], _ = run_measured([*SHOPLENS, *step], project, env)
    return seconds, env


def search_quality(project, env, crop):
    """evaluate-search's metrics on embeddings made with ``crop``, and the seconds extraction took."""
    print(f"image search with CROP={crop}", flush=True)
    extract, _ = run_measured([*SHOPLENS, "extract-features", "--crop", crop], project, env)
    for step in (["build-index"], ["evaluate-search"]):
        run_measured([*SHOPLENS, *step], project, env)
    metrics = json.loads((project / "reports" / "demo" / "search" / "metrics.json").read_text())
    return {**{key: metrics[key] for key in ("queries", "candidates", "precision@1", "precision@5", "precision@10",
                                             "map@10", "random_precision")}, "extract_seconds": round(extract, 1)}


def localisation(project):
    """The share of items whose box has IoU >= 0.5 with the true box, each way, over all items and by scene."""
    os.environ["SHOPLENS_PROJECT_DIR"] = str(project)
    from shoplens import config
    from shoplens.data.make_dataset import load_split, load_summary
    from shoplens.features.build_features import load_images
    from shoplens.models import localise
    from shoplens.models.trained import load_named_model

    model, metadata = load_named_model("multilabel_image", project / "models", project / "data" / "processed")
    features = project / "data" / "processed" / "features"
    splits = load_summary(project / "data" / "processed")["splits"]
    ids = np.concatenate([load_split(s, project / "data" / "processed")["id"].to_numpy(str) for s in splits])
    images = np.concatenate([load_images(s, features, metadata["image_size"]) for s in splits])
    truth = pd.read_csv(project / "data" / "raw" / "demo" / "boxes.csv", dtype=str).set_index("id").loc[ids]
    # The demo's photos are squares: a box scales to the model's input as the photo does.
    scale = metadata["image_size"] / config.DEMO_IMAGE_SIZE
    true_boxes = np.array([[int(v) for v in box.split(",")] for box in truth["box"]]) * scale
    cluttered = truth["cluttered"].to_numpy() == "1"

    started = time.perf_counter()
    maps = localise.ActivationMaps(model)
    auto = localise.crop_boxes(images, maps)
    seconds = time.perf_counter() - started
    boxes = {"whole photo (CROP=none)": np.tile([0, 0, images.shape[2], images.shape[1]], (len(images), 1)),
             "contrast with the border only": localise.contrast_boxes(images),
             "activation maps only": localise.cam_boxes(maps(images)),
             "CROP=auto": auto}
    plain = localise.plain_background(images)
    rows = {}
    for name, found in boxes.items():
        hit = localise.iou(found, true_boxes) >= 0.5
        rows[name] = {"all": round(float(hit.mean()), 4), "studio": round(float(hit[~cluttered].mean()), 4),
                      "cluttered": round(float(hit[cluttered].mean()), 4)}
    return {"items": len(images), "cluttered": int(cluttered.sum()), "image_size": metadata["image_size"],
            "iou_at_least_half": rows,
            "background_read_right": round(float((plain == ~cluttered).mean()), 4),
            "auto_items_per_second": round(len(images) / seconds, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="demo items")
    parser.add_argument("--clutter", type=float, default=0.5, help="share of cluttered photos")
    parser.add_argument("--seed", type=int, default=7, help="demo seed")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--workdir", type=Path, help="keep the scratch project here [default: a temporary folder]")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    project = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-crops-"))
    project.mkdir(parents=True, exist_ok=True)
    try:
        seconds, env = build_project(project, args.n, args.clutter, args.seed, args.epochs)
        search = {crop: search_quality(project, env, crop) for crop in ("none", "auto")}
        located = localisation(project)
        training = json.loads((project / "models" / "multilabel_image" / "model.json").read_text())
    finally:
        if not args.workdir:
            shutil.rmtree(project, ignore_errors=True)
    gain = search["auto"]["precision@5"] - search["none"]["precision@5"]
    auto = located["iou_at_least_half"]["CROP=auto"]["all"]
    checks = {f"CROP=auto boxes with IoU >= 0.5 against the true box: at least {TARGETS['iou_share']:.0%}":
              auto >= TARGETS["iou_share"],
              f"image search precision@5 with CROP=auto at least {TARGETS['precision_gain'] * 100:.0f} points above "
              "CROP=none": gain >= TARGETS["precision_gain"]}
    command = (f"make benchmark-crops  (python benchmarks/crops.py --n {args.n} --clutter {args.clutter} "
               f"--seed {args.seed} --epochs {args.epochs})")
    load = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    data = {"command": command, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "total_seconds": round(time.perf_counter() - started), "best_epoch": training.get("best_epoch"),
            "localisation": located, "search": search, "precision@5_gain": round(gain, 4), "checks": checks,
            "machine": machine(), "load_average_start_end": load}

    rows = "\n".join(f"| {name} | {r['all']:.1%} | {r['studio']:.1%} | {r['cluttered']:.1%} |"
                     for name, r in located["iou_at_least_half"].items())
    metrics = ("precision@1", "precision@5", "precision@10", "map@10")
    search_rows = "\n".join(f"| CROP={crop} | " + " | ".join(f"{m[k]:.3f}" for k in metrics) + " |"
                            for crop, m in search.items())
    none = search["none"]
    markdown = (
        f"# Object-centred crops benchmark\n\n`{command}`, CPU, {data['machine']['cpus']} cores (load average "
        f"{load[0]} at the start, {load[1]} at the end), {data['total_seconds']} s in all. A demo catalog of "
        f"{args.n:,} items (seed {args.seed}, no planted errors), {located['cluttered']:,} of whose photos show the "
        "product small and off-centre on a busy background; the image model (multilabel_image, simple CNN, no "
        f"pretrained weights, {args.epochs} epochs, best epoch {data['best_epoch']}) reads them at "
        f"{located['image_size']} px.\n\n"
        f"Share of the {located['items']:,} items (all splits) whose box has IoU >= 0.5 with the true box "
        f"(CROP=auto read {located['background_read_right']:.1%} of the backgrounds right, plain or busy; "
        f"{located['auto_items_per_second']:,.0f} photos/s):\n\n"
        "| box | all | studio photos | cluttered photos |\n|---|---|---|---|\n" + rows + "\n\n"
        f"Image search: {none['queries']:,} test products queried against {none['candidates']:,} train products, "
        f"relevant = same product_details (random ranking: precision {none['random_precision']:.3f}); both sides "
        "embedded with the same CROP:\n\n| embeddings | precision@1 | precision@5 | precision@10 | mAP@10 |\n"
        "|---|---|---|---|---|\n" + search_rows + "\n\n"
        f"precision@5 gain of CROP=auto: {gain * 100:+.1f} points.\n\n"
        + "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items()) + "\n")
    write_report("crops", data, markdown)


if __name__ == "__main__":
    main()
