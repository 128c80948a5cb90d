"""The make_dataset stage: raw catalog -> validated, cleaned, filtered, split tables.

Outputs, under ``data/``:

* ``interim/catalog.parquet``: every valid row with its cleaned title and levels,
  reused as long as the catalog file and the cleaning options are unchanged;
* ``processed/{train,validate,test}.parquet`` and ``processed/summary.json``:
  what was read, excluded (by reason), kept, and the split sizes.
"""
import hashlib
import json
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split

from shoplens import ShoplensError, config
from shoplens.data.catalog import CatalogColumns, read_catalog
from shoplens.data.clean_titles import TitleCleaner
from shoplens.data.images import check_image
from shoplens.outputs import staged_dir, write_json
from shoplens.parallel import imap


def make_dataset(
    catalog=config.CATALOG,
    columns=None,
    levels=config.LEVELS,
    language=config.LANGUAGE,
    min_items=config.MIN_ITEMS,
    subsample=config.SUBSAMPLE,
    split_ratios=config.SPLIT_RATIOS,
    seed=config.SEED,
    image_dir=None,
    interim_dir=config.INTERIM_DIR,
    processed_dir=config.PROCESSED_DIR,
    workers=config.WORKERS,
    progress=True,
):
    """Validate, clean, filter, subsample and split a catalog; return the run's summary.

    Bad rows are skipped and counted by reason in the summary; the run stops with a
    ``ShoplensError`` only for mistakes that leave nothing sensible to do.
    """
    started = time.perf_counter()
    columns = columns or CatalogColumns()
    _check_options(levels, min_items, subsample, split_ratios)
    cleaner = TitleCleaner(language)
    names = config.level_names(levels)

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
            f"{info['csv_path']}: no rows left to split (read {info['rows_read']}, "
            f"excluded {_describe(excluded)}); check the catalog or lower MIN_ITEMS"
        )

    splits = _split(table, split_ratios, seed)
    summary = {
        "catalog": info["csv_path"],
        "layout": info["layout"],
        "image_dir": info["image_dir"],
        "rows_read": info["rows_read"],
        "excluded": {reason: n for reason, n in sorted(excluded.items()) if n},
        "rows_dropped_by_subsample": subsampled_out,
        "rows_kept": len(table),
        "splits": {name: len(part) for name, part in splits.items()},
        "levels": names,
        "classes_per_level": {name: int(table[name].nunique()) for name in names},
        "has_titles": info["has_titles"],
        "has_images": info["has_images"],
        "attributes": info["attributes"],
        "options": {
            "levels": levels,
            "language": language,
            "min_items": min_items,
            "subsample": subsample,
            "split_ratios": list(split_ratios),
            "seed": seed,
            "columns": asdict(columns),
        },
        "data_version": _data_version(splits),
        "seconds": round(time.perf_counter() - started, 2),
    }
    with staged_dir(processed_dir) as staging:
        for name, part in splits.items():
            part.to_parquet(staging / f"{name}.parquet", index=False)
        write_json(summary, staging / "summary.json")
    return summary


def load_split(name, processed_dir=config.PROCESSED_DIR):
    """Read one processed split (``train``, ``validate`` or ``test``)."""
    path = Path(processed_dir) / f"{name}.parquet"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make data` first")
    return pd.read_parquet(path)


def load_summary(processed_dir=config.PROCESSED_DIR):
    """Read the summary of the last make_dataset run."""
    path = Path(processed_dir) / "summary.json"
    if not path.is_file():
        raise ShoplensError(f"{path}: not found; run `make data` first")
    return json.loads(path.read_text())


def _check_options(levels, min_items, subsample, split_ratios):
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


def _cleaned_catalog(catalog, columns, levels, cleaner, image_dir, interim_dir, workers, progress):
    """The validated, cleaned catalog: from ``interim/`` if it was made from the same inputs."""
    raw = read_catalog(catalog, columns, levels, image_dir)
    stat = raw.csv_path.stat()
    key = {
        "csv_path": str(raw.csv_path.resolve()),
        "csv_size": stat.st_size,
        "csv_mtime_ns": stat.st_mtime_ns,
        "image_dir": str(raw.image_dir),
        "columns": asdict(columns),
        "levels": levels,
        "language": cleaner.language,
    }
    table_path, info_path = Path(interim_dir) / "catalog.parquet", Path(interim_dir) / "catalog.json"
    if info_path.is_file() and table_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("key") == key:
            return pd.read_parquet(table_path), info

    table, excluded = _validate_and_clean(raw, cleaner, levels, workers, progress)
    info = {
        "key": key,
        "csv_path": str(raw.csv_path),
        "layout": raw.layout,
        "image_dir": str(raw.image_dir) if raw.has_images else None,
        "has_titles": raw.has_titles,
        "has_images": raw.has_images,
        "attributes": raw.attributes,
        "rows_read": raw.rows_read,
        "rows_valid": len(table),
        "excluded": dict(excluded),
    }
    with staged_dir(interim_dir) as staging:
        table.to_parquet(staging / "catalog.parquet", index=False)
        write_json(info, staging / "catalog.json")
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
    if raw.has_titles:
        table = table.assign(clean_title=[cleaner(t) for t in table["title"]])
        table = drop(table, table["clean_title"] == "", "empty_title")
    if raw.has_images:
        paths = table["image_path"].tolist()
        reasons = pd.Series(list(imap(check_image, paths, "checking images", workers, progress)), index=table.index)
        for reason in sorted(reasons.dropna().unique()):
            table = drop(table, reasons.reindex(table.index) == reason, reason)

    level_table = pd.DataFrame(table["category_parts"].tolist(), index=table.index, columns=config.level_names(levels))
    table = table.drop(columns="category_parts").assign(
        category=[config.CATEGORY_SEP.join(p) for p in level_table.values], **level_table
    )
    return table.reset_index(drop=True), excluded


def _split(table, ratios, seed):
    """Split stratified by full category path into the named splits."""
    train_ratio, validate_ratio, test_ratio = ratios
    try:
        train, rest = train_test_split(
            table, train_size=train_ratio, stratify=table["category"], random_state=seed
        )
        validate, test = train_test_split(
            rest, test_size=test_ratio / (validate_ratio + test_ratio), stratify=rest["category"], random_state=seed
        )
    except ValueError as err:
        raise ShoplensError(
            f"cannot split {len(table)} rows in {table['category'].nunique()} categories "
            f"{'/'.join(map(str, ratios))} stratified ({err}); raise MIN_ITEMS or change SPLIT"
        ) from None
    parts = (train, validate, test)
    return {name: part.sort_index().reset_index(drop=True) for name, part in zip(config.SPLITS, parts)}


def _data_version(splits):
    """A short fingerprint of which items are in which split, checked by later stages."""
    digest = hashlib.sha1()
    for name, part in splits.items():
        digest.update(name.encode())
        digest.update("\n".join(part["id"]).encode())
    return digest.hexdigest()[:12]


def _describe(counts):
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()) if n) or "none"
