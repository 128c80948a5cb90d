"""The audit stage: the processed catalog -> ``reports/<catalog>/audit/``, published in one step.

* ``label_issues.csv``: products likely filed under the wrong category (:mod:`.label_issues`),
  one row per product and level, the most unlikely first;
* ``duplicates.csv``: duplicate groups (:mod:`.duplicates`), one row per member;
* ``summary.json``: counts of both;
* ``label_issues.png``: the photos of the top flagged products, given and suggested category.

Every split is audited: a wrong label in test misleads the evaluation as much as
one in train misleads the model.
"""
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from shoplens import ShoplensError, config
from shoplens.data.make_dataset import load_split, load_summary
from shoplens.outputs import publish, read_stage
from shoplens.pipeline import audit_dir, audit_key
from shoplens.stages import version_of

ITEM_COLUMNS = ["split", "title", "image_path"]  # shown beside each flagged product


def audit(folds=config.AUDIT_FOLDS, hash_distance=config.AUDIT_HASH_DISTANCE,
          pixel_difference=config.AUDIT_PIXEL_DIFFERENCE, seed=config.SEED, processed_dir=config.PROCESSED_DIR,
          reports_dir=config.REPORTS_DIR):
    """Audit the catalog's categories and duplicates; publish the reports and return the summary."""
    # Imported here: the gallery reads published audits through this module, and its image has neither
    # cleanlab nor matplotlib.
    from shoplens.audit.duplicates import duplicate_table, summarize
    from shoplens.audit.label_issues import label_issue_table, out_of_fold_probabilities
    from shoplens.visualization.audit_figures import plot_label_issues

    if not 0 <= hash_distance <= 32:
        raise ShoplensError(f"AUDIT_HASH_DISTANCE must be from 0 to 32 bits, got {hash_distance}")
    if not 0 <= pixel_difference <= 255:
        raise ShoplensError(f"AUDIT_PIXEL_DIFFERENCE must be from 0 to 255, got {pixel_difference}")
    if folds < 2:
        raise ShoplensError(f"AUDIT_FOLDS must be at least 2, got {folds}")
    started = time.perf_counter()
    data = load_summary(processed_dir)
    catalog = pd.concat([load_split(split, processed_dir).assign(split=split) for split in config.SPLITS],
                        ignore_index=True)
    folder = image_features_folder(processed_dir)
    source = folder.name if folder else None
    key = audit_key(folds, hash_distance, pixel_difference, seed, source, processed_dir)
    features = _load_image_features(folder) if folder else None

    paths, probabilities, sources = out_of_fold_probabilities(catalog, features, folds, seed)
    issues = label_issue_table(catalog, paths, probabilities, data["levels"])
    duplicates = duplicate_table(catalog, hash_distance, pixel_difference)
    shown = catalog.set_index("id")[[c for c in ITEM_COLUMNS if c in catalog]]
    issues, duplicates = issues.join(shown, on="id"), duplicates.join(shown, on="id")

    flagged = issues.drop_duplicates("id")
    summary = {
        "catalog": data["catalog_name"], "items": len(catalog), "folds": folds, "evidence": sources,
        "image_features": source,
        "label_issues": {"items": int(len(flagged)), "share": round(len(flagged) / len(catalog), 4),
                         "per_level": {str(k): int(v) for k, v in issues["level"].value_counts().items()}},
        "out_of_fold_accuracy": float((paths[probabilities.argmax(axis=1)] == catalog["category"]).mean()),
        "duplicates": summarize(duplicates), "hash_distance": hash_distance, "pixel_difference": pixel_difference,
        "seconds": round(time.perf_counter() - started, 1),
    }
    with publish(audit_dir(data["catalog_name"], reports_dir), "audit", key, version_of(key)) as staging:
        issues.to_csv(staging / "label_issues.csv", index=False)
        duplicates.to_csv(staging / "duplicates.csv", index=False)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        if "image_path" in flagged and len(flagged):
            plot_label_issues(flagged.head(config.AUDIT_FIGURE_ITEMS), staging / "label_issues.png")
    return summary


def image_features_folder(processed_dir=config.PROCESSED_DIR):
    """The folder of a frozen backbone's pooled features of every product that is up to date with the project's
    images, where a model cached them; ``None`` if there is none."""
    try:
        versions = json.loads((Path(processed_dir) / "features" / "features.json").read_text())["versions"]
    except (OSError, ValueError, KeyError):
        return None
    for folder in sorted((Path(processed_dir) / "backbone").glob("*-image_features")):
        record = read_stage(folder)
        if record is not None and record["key"]["upstream"]["images"] in versions.values() and all(
                (folder / f"{split}.npy").is_file() for split in config.SPLITS):
            return folder
    return None


def _load_image_features(folder):
    """The cached features in split order, as float32; training items' first view is the photo as it is."""
    train, *others = (np.load(folder / f"{split}.npy", mmap_mode="r") for split in config.SPLITS)
    return np.concatenate([train[0], *others]).astype(np.float32)


def describe_audit(summary):
    """The audit's summary, for the terminal."""
    issues = summary["label_issues"]
    lines = [f"audit of {summary['items']:,} products ({summary['catalog']}), {summary['folds']}-fold, from "
             f"{' and '.join(summary['evidence'])}: out-of-fold accuracy {summary['out_of_fold_accuracy']:.3f}",
             f"  likely mis-categorised: {issues['items']:,} products ({issues['share']:.1%}); per level: "
             + ", ".join(f"{level} {n:,}" for level, n in issues["per_level"].items())]
    for kind, counts in summary["duplicates"].items():
        lines.append(f"  {kind.replace('_', ' ')}: {counts['groups']:,} groups of {counts['items']:,} products, "
                     f"{counts['groups_disagreeing_on_category']:,} filed under more than one category")
    return "\n".join(lines)


def load_audit(catalog, reports_dir=config.REPORTS_DIR):
    """The published audit of a catalog: ``(summary, label issues, duplicates)``; ``None`` if there is none."""
    folder = audit_dir(catalog, reports_dir)
    if read_stage(folder) is None:
        return None
    try:
        return (json.loads((folder / "summary.json").read_text()),
                pd.read_csv(folder / "label_issues.csv", dtype={"id": str}, keep_default_na=False),
                pd.read_csv(folder / "duplicates.csv", dtype={"id": str}, keep_default_na=False))
    except (OSError, ValueError):
        return None
