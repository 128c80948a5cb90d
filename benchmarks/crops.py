"""Benchmark of object-centred crops (CROP=auto): `make benchmark-crops`.

A demo catalog of ``--n`` (1,000) items, ``--clutter`` (half) of whose photos show the product small and
off-centre on a busy background, with no planted errors, seed ``--seed`` (7: the thresholds of
shoplens.models.localise were chosen on the catalog of seed 42), goes through the shoplens commands in a
scratch project. The image model is trained as `make demo` trains it (BACKBONE=simple, WEIGHTS=none,
``--epochs`` 16), once per training seed (``--seeds``), three ways:

* ``CROP=none``: on the whole photos, which it then classifies and embeds;
* ``CROP=auto``: on the whole photos, then as long again on the photos and the crops around the products its own
  activation maps find, and it embeds the crops;
* ``CROP=none`` for twice the epochs: as many training steps as CROP=auto takes, so that the crops' gain is not
  only that of a longer training.

Then, per seed:

1. Localisation: the box the CROP=auto model finds in every item's photo (all splits, as the model reads it), by
   contrast where the background is plain and by its activation maps elsewhere, against the true box the
   generator recorded: the share of items with IoU >= 0.5 (target: 80 %), of the studio and of the cluttered
   photos, beside the whole photo as the box (what CROP=none reads) and each way alone.
2. Retrieval: `shoplens evaluate-search` (every test product queried against the train products, the same
   product_details relevant) on each model's embeddings, beside random ranking (target: precision@5 10 points
   higher with CROP=auto than with CROP=none).

Figures are medians over the seeds, each seed's given too. Results go to reports/benchmarks/crops.json and .md.
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
from measure import machine, median, run_measured, write_report

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
TARGETS = {"iou_share": 0.8, "precision_gain": 0.10}
METRICS = ("precision@1", "precision@5", "precision@10", "map@10")


def build_project(project, n, clutter, seed):
    """The scratch project and its demo catalog, split and made into features; seconds per command."""
    env = {"SHOPLENS_PROJECT_DIR": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    steps = [["params", "BACKBONE=simple", "WEIGHTS=none"],  # no 224-pixel images for a pretrained backbone
             ["demo-catalog", "--n", str(n), "--seed", str(seed), "--planted", "0", "--clutter", str(clutter)],
             ["make-dataset", "--catalog", "demo"],
             ["build-features"]]
    seconds = {}
    for step in steps:
        print("shoplens", " ".join(step), flush=True)
        seconds[step[0]], _ = run_measured([*SHOPLENS, *step], project, env)
    return seconds, env


def search_quality(project, env, crop, epochs, seed):
    """Train the image model with ``crop``; evaluate-search's metrics on its embeddings, and what training took."""
    print(f"image model with CROP={crop}, {epochs} epochs, seed {seed}", flush=True)
    run_measured([*SHOPLENS, "train", "--classmode", "multilabel", "--modelmode", "image", "--backbone", "simple",
                  "--weights", "none", "--epochs", str(epochs), "--seed", str(seed), "--crop", crop], project, env)
    for step in (["extract-features"], ["build-index"], ["evaluate-search"]):
        run_measured([*SHOPLENS, *step], project, env)
    metrics = json.loads((project / "reports" / "demo" / "search" / "metrics.json").read_text())
    model = json.loads((project / "models" / "multilabel_image" / "model.json").read_text())
    return {**{key: metrics[key] for key in ("queries", "candidates", *METRICS, "random_precision")},
            "train_seconds": model["train_seconds"], "stage_epochs": model["stage_epochs"]}


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
        rows[name] = {"all": float(hit.mean()), "studio": float(hit[~cluttered].mean()),
                      "cluttered": float(hit[cluttered].mean())}
    return {"items": len(images), "cluttered": int(cluttered.sum()), "image_size": metadata["image_size"],
            "iou_at_least_half": rows,
            "background_read_right": float((plain == ~cluttered).mean()),
            "auto_items_per_second": len(images) / seconds}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="demo items")
    parser.add_argument("--clutter", type=float, default=0.5, help="share of cluttered photos")
    parser.add_argument("--seed", type=int, default=7, help="demo seed")
    parser.add_argument("--epochs", type=int, default=16)
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated training seeds")
    parser.add_argument("--workdir", type=Path, help="keep the scratch project here [default: a temporary folder]")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    project = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-crops-"))
    project.mkdir(parents=True, exist_ok=True)
    variants = {"CROP=none": ("none", args.epochs), f"CROP=none, {2 * args.epochs} epochs": ("none", 2 * args.epochs),
                "CROP=auto": ("auto", args.epochs)}
    runs, located = {name: [] for name in variants}, []
    try:
        seconds, env = build_project(project, args.n, args.clutter, args.seed)
        for seed in seeds:
            for name, (crop, epochs) in variants.items():  # CROP=auto last: its model is the one localised
                runs[name].append(search_quality(project, env, crop, epochs, seed))
            located.append(localisation(project))
    finally:
        if not args.workdir:
            shutil.rmtree(project, ignore_errors=True)

    def mid(values):
        return round(float(median(values)), 4)

    search = {name: {**{key: mid([r[key] for r in rs]) for key in (*METRICS, "train_seconds")},
                     "precision@5_per_seed": [round(r["precision@5"], 4) for r in rs]} for name, rs in runs.items()}
    gains = [a["precision@5"] - b["precision@5"] for a, b in zip(runs["CROP=auto"], runs["CROP=none"])]
    long_gains = [a["precision@5"] - b["precision@5"] for a, b in zip(runs["CROP=auto"], runs[list(variants)[1]])]
    iou_rows = {name: {scene: mid([loc["iou_at_least_half"][name][scene] for loc in located])
                       for scene in ("all", "studio", "cluttered")} for name in located[0]["iou_at_least_half"]}
    auto_iou = [loc["iou_at_least_half"]["CROP=auto"]["all"] for loc in located]
    checks = {f"CROP=auto boxes with IoU >= 0.5 against the true box: at least {TARGETS['iou_share']:.0%} (median)":
              mid(auto_iou) >= TARGETS["iou_share"],
              f"image search precision@5 with CROP=auto at least {TARGETS['precision_gain'] * 100:.0f} points above "
              "CROP=none (median of the seeds' gains)": mid(gains) >= TARGETS["precision_gain"]}
    command = (f"make benchmark-crops  (python benchmarks/crops.py --n {args.n} --clutter {args.clutter} "
               f"--seed {args.seed} --epochs {args.epochs} --seeds {args.seeds})")
    load = [round(load_before, 1), round(os.getloadavg()[0], 1)]
    first = runs["CROP=none"][0]
    data = {"command": command, "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "total_seconds": round(time.perf_counter() - started), "seeds": seeds,
            "localisation": {"items": located[0]["items"], "cluttered": located[0]["cluttered"],
                             "image_size": located[0]["image_size"], "iou_at_least_half": iou_rows,
                             "iou_at_least_half_per_seed": [round(v, 4) for v in auto_iou],
                             "background_read_right": mid([loc["background_read_right"] for loc in located]),
                             "auto_items_per_second": mid([loc["auto_items_per_second"] for loc in located])},
            "search": search, "runs": runs, "precision@5_gain": mid(gains),
            "precision@5_gain_per_seed": [round(g, 4) for g in gains],
            "precision@5_gain_over_as_many_steps": mid(long_gains), "checks": checks,
            "machine": machine(), "load_average_start_end": load}

    loc = data["localisation"]
    rows = "\n".join(f"| {name} | {r['all']:.1%} | {r['studio']:.1%} | {r['cluttered']:.1%} |"
                     for name, r in iou_rows.items())
    search_rows = "\n".join(
        f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in METRICS)
        + f" | {', '.join(f'{v:.3f}' for v in m['precision@5_per_seed'])} | {m['train_seconds']:.0f} |"
        for name, m in search.items())
    markdown = (
        f"# Object-centred crops benchmark\n\n`{command}`, CPU, {data['machine']['cpus']} cores (load average "
        f"{load[0]} at the start, {load[1]} at the end), {data['total_seconds']} s in all. A demo catalog of "
        f"{args.n:,} items (seed {args.seed}, no planted errors), {loc['cluttered']:,} of whose photos show the "
        "product small and off-centre on a busy background; the image model (multilabel_image, simple CNN, no "
        f"pretrained weights) reads them at {loc['image_size']} px. Medians over training seeds "
        f"{', '.join(map(str, seeds))}.\n\n"
        f"Share of the {loc['items']:,} items (all splits) whose box, found by the CROP=auto model, has IoU >= 0.5 "
        f"with the true box (per seed: {', '.join(f'{v:.1%}' for v in auto_iou)}; the background was read right, "
        f"plain or busy, for {loc['background_read_right']:.1%}; {loc['auto_items_per_second']:,.0f} photos/s):\n\n"
        "| box | all | studio photos | cluttered photos |\n|---|---|---|---|\n" + rows + "\n\n"
        f"Image search: {first['queries']:,} test products queried against {first['candidates']:,} train products, "
        f"relevant = same product_details (random ranking: precision {first['random_precision']:.3f}). CROP=auto "
        f"trains {args.epochs} epochs on the whole photos, then {args.epochs} on the photos and their crops:\n\n"
        "| image model | precision@1 | precision@5 | precision@10 | mAP@10 | precision@5 per seed | train s |\n"
        "|---|---|---|---|---|---|---|\n" + search_rows + "\n\n"
        f"precision@5 gain of CROP=auto over CROP=none: {data['precision@5_gain'] * 100:+.1f} points (per seed: "
        f"{', '.join(f'{g * 100:+.1f}' for g in gains)}); over CROP=none trained as many steps: "
        f"{data['precision@5_gain_over_as_many_steps'] * 100:+.1f} points.\n\n"
        + "\n".join(f"- {'met' if ok else 'NOT met'}: {check}" for check, ok in checks.items()) + "\n")
    write_report("crops", data, markdown)


if __name__ == "__main__":
    main()
