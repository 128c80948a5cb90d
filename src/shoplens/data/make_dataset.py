"""The make_dataset stage: raw catalog -> validated, cleaned, filtered, split tables.

Outputs, each folder published in one step (:func:`shoplens.outputs.publish`):

* ``data/interim/catalog/``: ``catalog.parquet``, every valid row with its cleaned
  title and levels, and ``catalog.json``; reused by later runs as long as the
  catalog file, its image folder, the column options, ``LEVELS``, ``LANGUAGE``
  and the cleaning code are unchanged;
* ``data/processed/splits/``: ``{train,validate,test}.parquet`` (and ``unseen.parquet`` with ``UNSEEN``: the
  products of the categories held out of every model) and ``summary.json``: what was read, excluded (by reason),
  kept, the split sizes, and the ``data_version`` every later stage records.

Image paths are stored relative to the project folder when the catalog lies
inside it (absolute otherwise), so the tables stay valid when the project moves
and resolve from any working folder (:func:`shoplens.config.project_path`).
"""
import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from shoplens import ShoplensError, config
from shoplens.data.catalog import CatalogColumns, read_catalog
from shoplens.data.clean_titles import TitleCleaner
from shoplens.data.images import inspect_image
from shoplens.data.split import GROUP_SPLITS, duplicate_groups, hold_out_classes, split
from shoplens.outputs import check_free_space, publish, read_stage
from shoplens.parallel import imap
from shoplens.pipeline import catalog_source, clean_key, dataset_key
from shoplens.stages import version_of


def catalog_name(catalog):
    """A short name of a catalog for report folders: ``demo``, ``fashion-products``, ``shop``."""
    if str(catalog) == "demo":
        return "demo"
    path = Path(catalog).absolute()
    if path.suffix.lower() == ".csv" and path.name not in ("catalog.csv", "styles.csv"):
        return path.stem
    return (path.parent if path.suffix.lower() == ".csv" else path).name or "catalog"


def make_dataset(
    catalog=config.CATALOG,
    columns=None,
    levels=config.LEVELS,
    language=config.LANGUAGE,
    min_items=config.MIN_ITEMS,
    subsample=config.SUBSAMPLE,
    split_ratios=config.SPLIT_RATIOS,
    seed=config.SEED,
    group_split=config.GROUP_SPLIT,
    unseen=config.UNSEEN,
    image_dir=None,
    interim_dir=config.INTERIM_DIR,
    processed_dir=config.PROCESSED_DIR,
    workers=config.WORKERS,
    progress=True,
):
    """Validate, clean, filter, subsample and split a catalog; publish the splits; return the run's summary.

    Bad rows are skipped and counted by reason in the summary; the run stops with a
    ``ShoplensError`` only for mistakes that leave nothing sensible to do, and then
    publishes nothing.
    """
    started = time.perf_counter()
    columns = columns or CatalogColumns()
    _check_options(levels, min_items, subsample, split_ratios, group_split)
    cleaner = TitleCleaner(language)
    names = config.level_names(levels)
    key = dataset_key(catalog, columns, levels, language, min_items, subsample, split_ratios, seed, group_split,
                      image_dir, unseen)

    table, info = _cleaned_catalog(catalog, columns, levels, cleaner, image_dir, interim_dir, workers, progress)
    excluded = Counter(info["excluded"])

    if subsample < 1.0:
        table = table.groupby("category", group_keys=False).sample(frac=subsample, random_state=seed).sort_index()
    subsampled_out = info["rows_valid"] - len(table)

    sizes = table["category"].value_counts()
    rare = sizes[sizes < min_items].index
    excluded["rare_category"] = int(table["category"].isin(rare).sum())
    table = table[~table["category"].isin(rare)]
    if table.empty:
        raise ShoplensError(
            f"{info['csv_path']}: no rows left to split (read {info['rows_read']:,}, "
            f"excluded {_describe(excluded)}); check the catalog or lower MIN_ITEMS"
        )

    seen, held_out, unseen_classes = hold_out_classes(table, names[-1], config.UNSEEN_SHARE, seed) if unseen \
        else (table, None, [])
    by = [] if group_split == "none" else group_split.split(",")
    groups = duplicate_groups(seen, by)
    splits = split(seen, split_ratios, seed, groups if by else None)
    if unseen:
        splits[config.UNSEEN_SPLIT] = held_out
    version = data_version(splits, key)
    summary = {
        "catalog": str(catalog),
        "catalog_name": catalog_name(catalog),
        "csv_path": info["csv_path"],
        "layout": info["layout"],
        "image_dir": info["image_dir"],
        "rows_read": info["rows_read"],
        "excluded": {reason: n for reason, n in sorted(excluded.items()) if n},
        "malformed_lines": info.get("malformed_lines", []),
        "rows_dropped_by_subsample": subsampled_out,
        "rows_kept": len(table),
        "splits": {name: len(part) for name, part in splits.items()},
        "unseen_classes": unseen_classes,
        "levels": names,
        "classes_per_level": {name: int(table[name].nunique()) for name in names},
        "has_titles": info["has_titles"],
        "has_images": info["has_images"],
        "attributes": info["attributes"],
        "duplicates": _duplicate_counts(seen, groups, by, splits),
        "options": {
            "levels": levels,
            "language": language,
            "min_items": min_items,
            "subsample": subsample,
            "split_ratios": list(split_ratios),
            "seed": seed,
            "group_split": group_split,
            "unseen": bool(unseen),
            "columns": asdict(columns),
        },
        "data_version": version,
    }
    splits_dir = config.splits_dir(processed_dir)
    check_free_space(splits_dir.parent, sum(int(p.memory_usage(deep=True).sum()) for p in splits.values()) // 2,
                     "make data")
    with publish(splits_dir, "data", key, version) as staging:
        for name, part in splits.items():
            part.to_parquet(staging / f"{name}.parquet", index=False)
        summary["seconds"] = round(time.perf_counter() - started, 2)
        (staging / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def data_version(splits, key):
    """A fingerprint of the splits' contents and the images they point to, which later stages record.

    Made from what the splits hold, not from how they were made: a run that reproduces
    the same splits (the catalog file touched, the code reworded) keeps the version,
    and nothing downstream is made again.
    """
    digest = hashlib.sha1(str(key["inputs"].get("image folder", "")).encode())
    for name, part in splits.items():
        digest.update(name.encode())
        digest.update(",".join(part.columns).encode())
        digest.update(pd.util.hash_pandas_object(part.astype(str), index=False).to_numpy().tobytes())
    return digest.hexdigest()[:12]


def load_split(name, processed_dir=config.PROCESSED_DIR):
    """Read one processed split (``train``, ``validate``, ``test`` or ``unseen``)."""
    path = config.splits_dir(processed_dir) / f"{name}.parquet"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make data` first")
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as err:
        raise ShoplensError(f"{path}: cannot read ({_first_line(err)}); run `make data` again") from None


def load_summary(processed_dir=config.PROCESSED_DIR):
    """Read the summary of the last make_dataset run."""
    path = config.splits_dir(processed_dir) / "summary.json"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make data` first")
    try:
        return json.loads(path.read_text())
    except ValueError:
        raise ShoplensError(f"{path}: damaged; run `make data` again") from None


def _duplicate_counts(table, groups, by, splits):
    """How much the catalog repeats itself, and what of it still crosses from train into test."""
    sizes = np.bincount(groups)
    counts = {"grouped_by": by, "groups": int(len(sizes)), "items_in_shared_groups": int(sizes[sizes > 1].sum()),
              "largest_group": int(sizes.max())}
    if "clean_title" in table:
        train_titles = set(splits["train"]["clean_title"])
        counts["test_items_with_a_train_title"] = int(splits["test"]["clean_title"].isin(train_titles).sum())
    return counts


def _check_options(levels, min_items, subsample, split_ratios, group_split=config.GROUP_SPLIT):
    if levels < 1:
        raise ShoplensError(f"LEVELS must be at least 1, got {levels}")
    if min_items < 1:
        raise ShoplensError(f"MIN_ITEMS must be at least 1, got {min_items}")
    if not 0 < subsample <= 1:
        raise ShoplensError(f"SUBSAMPLE must be in (0, 1], got {subsample}")
    if len(split_ratios) != len(config.SPLITS):
        raise ShoplensError(f"SPLIT needs {len(config.SPLITS)} ratios (train,validate,test), got {split_ratios}")
    for name, ratio in zip(config.SPLITS, split_ratios):
        if ratio <= 0:
            raise ShoplensError(f"SPLIT ratio of '{name}' is {ratio}: that split would be empty")
    if abs(sum(split_ratios) - 1) > 1e-6:
        raise ShoplensError(f"SPLIT ratios must add up to 1, got {split_ratios}")
    if group_split not in GROUP_SPLITS:
        raise ShoplensError(f"GROUP_SPLIT must be one of {', '.join(GROUP_SPLITS)}, got '{group_split}'")


def _cleaned_catalog(catalog, columns, levels, cleaner, image_dir, interim_dir, workers, progress):
    """The validated, cleaned catalog: from ``interim/catalog/`` if it was made from the same inputs."""
    key = clean_key(catalog, columns, levels, cleaner.language, image_dir)
    folder = Path(interim_dir) / config.CLEAN_CATALOG_DIR.name
    record = read_stage(folder)
    if record is not None and record.get("key") == key:
        try:
            return pd.read_parquet(folder / "catalog.parquet"), json.loads((folder / "catalog.json").read_text())
        except (OSError, ValueError):
            pass  # damaged: make it again

    raw = read_catalog(catalog_source(catalog), columns, levels, image_dir)
    if raw.rows_read == 0:
        raise ShoplensError(f"{raw.csv_path}: the header has no rows under it; a catalog needs at least one item")
    if raw.malformed_rows == raw.rows_read:
        lines = ", ".join(map(str, raw.malformed_lines[:5])) + (", ..." if raw.malformed_rows > 5 else "")
        raise ShoplensError(f"{raw.csv_path}: none of its {raw.rows_read:,} rows has the header's columns "
                            f"(malformed: line {lines}); check the separator and the quoting")
    table, excluded = _validate_and_clean(raw, cleaner, levels, workers, progress)
    info = {
        "csv_path": str(raw.csv_path),
        "layout": raw.layout,
        "image_dir": config.project_relative(raw.image_dir) if raw.has_images else None,
        "has_titles": raw.has_titles,
        "has_images": raw.has_images,
        "attributes": raw.attributes,
        "rows_read": raw.rows_read,
        "rows_valid": len(table),
        "excluded": dict(excluded),
        "malformed_lines": raw.malformed_lines[:20],
    }
    check_free_space(folder.parent, int(table.memory_usage(deep=True).sum()) // 2, "make data")
    with publish(folder, "cleaned catalog", key, version_of(key)) as staging:
        table.to_parquet(staging / "catalog.parquet", index=False)
        (staging / "catalog.json").write_text(json.dumps(info, indent=2) + "\n")
    return table, info


def _validate_and_clean(raw, cleaner, levels, workers, progress):
    """Drop invalid rows, counting them by reason; add cleaned titles and level columns."""
    excluded = Counter({"malformed_row": raw.malformed_rows})

    def drop(table, bad, reason):
        excluded[reason] += int(bad.sum())
        return table[~bad]

    table = raw.table
    table = drop(table, table["id"] == "", "missing_id")
    table = drop(table, table["id"].duplicated(), "duplicate_id")
    table = drop(table, table["category_parts"].str.len() == 0, "missing_category")
    table = drop(table, table["category_parts"].map(lambda parts: "" in parts).astype(bool), "empty_level")
    if raw.has_titles:
        table = table.assign(clean_title=[cleaner(t) for t in table["title"]])
        table = drop(table, table["clean_title"] == "", "empty_title")
    if raw.has_images:
        paths = table["image_path"].tolist()
        hashes = ["image_sha1", "image_phash", "image_phash_mirror"]
        found = pd.DataFrame(list(imap(inspect_image, paths, "checking images", workers, progress)),
                             index=table.index, columns=["reason", *hashes])
        for reason in sorted(found["reason"].dropna().unique()):
            table = drop(table, found["reason"].reindex(table.index) == reason, reason)
        table = table.assign(image_path=[config.project_relative(p) for p in table["image_path"]],
                             **{column: found[column].reindex(table.index) for column in hashes})

    level_table = pd.DataFrame(table["category_parts"].tolist(), index=table.index, columns=config.level_names(levels),
                               dtype=object)
    table = table.drop(columns="category_parts").assign(
        category=[config.CATEGORY_SEP.join(p) for p in level_table.values], **level_table
    )
    return table.reset_index(drop=True), excluded


def _describe(counts):
    return ", ".join(f"{n:,} {reason}" for reason, n in sorted(counts.items()) if n) or "none"


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__

