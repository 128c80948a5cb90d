"""Benchmark of the catalog audit on the real fashion catalog with planted errors: `make benchmark-audit`.

A copy of the catalog is made in a scratch project (``../shared`` is only read): 3 % of the products are moved
to another category path (so their level-3 class changes) chosen at random, and 100 duplicates are added, each
a product's photo re-encoded at JPEG quality 60, resized to 90 % or mirrored. Then `make-dataset` and `audit`
run on it, the audit timed, once with the titles alone and, where the MobileNetV2 weights are present, again
with a frozen MobileNetV2's cached features of the photos. Reported: recall and precision of the planted
flips among the flagged products (precision counts every other flag as false, genuine catalog errors
included: the 20 top-ranked of those are listed, and drawn in audit_other_flags.png, to be looked at), recall
of the planted duplicates, and the duplicate groups of the original catalog. Results go to
reports/benchmarks/audit.json and audit.md.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from measure import REPORTS, machine, run_measured, write_report

from shoplens import config
from shoplens.data.demo_catalog import save_duplicate

SHOPLENS = [sys.executable, "-m", "shoplens.cli"]
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FASHION = SHARED / "datasets" / "fashion-products"
WEIGHTS = SHARED / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
LEVELS = list(config.FASHION_COLUMNS["levels"])


def planted_copy(source, out, flip_share, duplicates, seed):
    """Write the catalog with planted errors into ``out``; return what was planted."""
    rng = np.random.default_rng(seed)
    styles = pd.read_csv(source / "styles.csv", dtype=str, on_bad_lines="skip", keep_default_na=False)
    styles = styles[styles["id"].map(lambda i: (source / "images" / f"{i}.jpg").is_file())].reset_index(drop=True)
    path = styles[LEVELS].agg(config.CATEGORY_SEP.join, axis=1)
    counts = path.value_counts()
    kept = counts[counts >= config.MIN_ITEMS].index  # paths make-dataset keeps: a flip into one survives
    eligible = np.flatnonzero(path.isin(kept).to_numpy())
    flipped = rng.choice(eligible, size=round(flip_share * len(eligible)), replace=False)
    planted = {"flipped": {}, "duplicates": {}}
    for row in flipped:
        others = [p for p in kept if p.split(config.CATEGORY_SEP)[-1] != path[row].split(config.CATEGORY_SEP)[-1]]
        new = others[rng.integers(len(others))]
        styles.loc[row, LEVELS] = new.split(config.CATEGORY_SEP)
        planted["flipped"][styles.at[row, "id"]] = {"given": new, "was": path[row]}

    images = out / "images"
    images.mkdir(parents=True)
    for item in styles["id"]:
        (images / f"{item}.jpg").symlink_to(source / "images" / f"{item}.jpg")
    copies = []
    for j, row in enumerate(rng.choice(np.setdiff1d(eligible, flipped), size=duplicates, replace=False)):
        original, item = styles.at[row, "id"], f"9{j:05d}"
        save_duplicate(source / "images" / f"{original}.jpg", images / f"{item}.jpg", j % 3)
        copies.append({**styles.loc[row].to_dict(), "id": item})
        planted["duplicates"][item] = original
    pd.concat([styles, pd.DataFrame(copies)], ignore_index=True).to_csv(out / "styles.csv", index=False)
    return planted


def score(report_dir, planted):
    """Recall and precision of the planted flips and duplicates in one audit's reports."""
    issues = pd.read_csv(report_dir / "label_issues.csv", dtype={"id": str}, keep_default_na=False)
    duplicates = pd.read_csv(report_dir / "duplicates.csv", dtype={"id": str}, keep_default_na=False)
    summary = json.loads((report_dir / "summary.json").read_text())
    flagged = list(dict.fromkeys(issues["id"]))
    flips = set(planted["flipped"])
    found = flips & set(flagged)
    images = duplicates[duplicates["kind"] != "same_title"]
    group_of = images.groupby("id")["group"].apply(set)
    copies = planted["duplicates"]
    paired = [c for c, o in copies.items() if group_of.get(c, set()) & group_of.get(o, set())]
    original = images[~images["group"].isin(images.loc[images["id"].isin(copies), "group"])]
    others = issues[~issues["id"].isin(flips)].drop_duplicates("id")
    return {
        "audit_seconds": summary["seconds"], "evidence": summary["evidence"],
        "out_of_fold_accuracy": summary["out_of_fold_accuracy"], "flagged": len(flagged),
        "flips_planted": len(flips), "flips_found": len(found), "flip_recall": len(found) / len(flips),
        "flip_precision": len(found) / max(1, len(flagged)),
        "duplicates_planted": len(copies), "duplicates_found": len(paired),
        "duplicate_recall": len(paired) / len(copies),
        "original_catalog_groups": {kind: int(part["group"].nunique()) for kind, part in original.groupby("kind")},
        "original_catalog_groups_disagreeing": int(original.loc[original["categories_disagree"], "group"].nunique()),
        "same_title_groups": summary["duplicates"].get("same_title", {}),
        "top_other_flags": others.head(20)[["id", "level", "given", "suggested", "given_probability", "title",
                                           "category", "suggested_path"]].to_dict("records"),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--catalog", type=Path, default=FASHION)
    parser.add_argument("--workdir", type=Path, default=None, help="scratch project [default: a temporary one]")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.catalog.is_dir():
        raise SystemExit(f"{args.catalog}: not found; this benchmark needs the fashion-products dataset")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="shoplens-bench-audit-"))
    shutil.rmtree(workdir / "catalog", ignore_errors=True)
    env = {"SHOPLENS_PROJECT_DIR": str(workdir)}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    runs = {}
    try:
        planted = planted_copy(args.catalog, workdir / "catalog", 0.03, 100, args.seed)
        run_measured([*SHOPLENS, "make-dataset", "--catalog", str(workdir / "catalog")], workdir, env)
        catalog = json.loads((workdir / "data" / "processed" / "splits" / "summary.json").read_text())["catalog_name"]
        report_dir = workdir / "reports" / catalog / "audit"
        seconds, peak = run_measured([*SHOPLENS, "audit"], workdir, env)
        runs["titles"] = {**score(report_dir, planted), "command_seconds": round(seconds, 1),
                          "peak_gb": round(peak / 2**30, 2)}
        if WEIGHTS.is_file():
            # A frozen MobileNetV2 caches its pooled features of every photo; the audit then reads them too.
            run_measured([*SHOPLENS, "build-features", "--image-size", "32"], workdir, env)
            run_measured([*SHOPLENS, "train", "--modelmode", "image", "--backbone", "mobilenetv2", "--weights",
                          str(WEIGHTS), "--frozen", "--epochs", "1"], workdir, env)
            seconds, peak = run_measured([*SHOPLENS, "audit"], workdir, env)
            runs["titles and photos"] = {**score(report_dir, planted), "command_seconds": round(seconds, 1),
                                         "peak_gb": round(peak / 2**30, 2)}
        from shoplens.visualization.audit_figures import plot_label_issues

        issues = pd.read_csv(report_dir / "label_issues.csv", dtype={"id": str}, keep_default_na=False)
        others = issues[~issues["id"].isin(set(planted["flipped"]))].drop_duplicates("id").head(20)
        # The reports' image paths are relative to the scratch project.
        others = others.assign(image_path=[str(workdir / p) for p in others["image_path"]])
        REPORTS.mkdir(parents=True, exist_ok=True)
        plot_label_issues(others, REPORTS / "audit_other_flags.png")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)

    command = "make benchmark-audit  (python benchmarks/audit.py)"
    data = {"command": command, "catalog": str(args.catalog), "planted": {"flip_share": 0.03, "duplicates": 100},
            "runs": runs, "machine": machine()}
    lines = ["| evidence | audit s | flagged | flips found (recall) | precision | duplicates found (recall) |",
             "|---|---|---|---|---|---|"]
    for name, r in runs.items():
        lines.append(f"| {name} | {r['audit_seconds']:.0f} | {r['flagged']:,} | {r['flips_found']}/{r['flips_planted']}"
                     f" ({r['flip_recall']:.3f}) | {r['flip_precision']:.3f} | {r['duplicates_found']}/"
                     f"{r['duplicates_planted']} ({r['duplicate_recall']:.3f}) |")
    last = next(reversed(runs.values()))
    others = "\n".join(f"- {o['id']}: “{o['title']}” filed under {o['category']}; suggested {o['suggested_path']}"
                       f" ({o['level']}: p={o['given_probability']:.2f})" for o in last["top_other_flags"])
    markdown = (f"# Audit benchmark\n\n`{command}` on {args.catalog.name} with {len(planted['flipped'])} products "
                f"moved to another category path (3 %) and 100 planted duplicates, CPU, {data['machine']['cpus']} "
                f"cores (load average {data['machine']['load_average']} at the end). Audit seconds: the stage "
                f"alone, as its summary.json records.\n\n"
                + "\n".join(lines) + "\n\nDuplicate groups of the original catalog (planted copies left out): "
                + ", ".join(f"{k} {v:,}" for k, v in last["original_catalog_groups"].items())
                + f"; {last['original_catalog_groups_disagreeing']:,} of them filed under more than one category.\n\n"
                "The 20 top-ranked flags that are not planted flips (audit_other_flags.png shows their photos):\n\n"
                + others + "\n")
    write_report("audit", data, markdown)


if __name__ == "__main__":
    main()
