"""Duplicate products: the same image file, near-identical photos, the same title.

Photos are compared by their 64-bit perceptual hashes (made when the catalog was
read, :mod:`shoplens.data.images`): a photo re-encoded at another JPEG quality or
resized keeps its hash within a few bits, and a mirrored copy matches the hash of
the mirror image. FAISS finds every pair within ``max_distance`` bits; the pairs
whose small thumbnails also match are the same photo.
"""
import faiss
import numpy as np
import pandas as pd
from PIL import Image, ImageOps
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from shoplens import ShoplensError, config
from shoplens.data.images import BACKGROUND, open_image, to_rgb
from shoplens.progress import progress_bar

# The kinds of duplicate group, the strongest evidence first.
KINDS = ("exact_image", "near_image", "same_title")
THUMBNAIL = 16  # the side of the thumbnails compared: small enough that JPEG noise averages out


def duplicate_table(catalog, max_distance=config.AUDIT_HASH_DISTANCE, max_difference=config.AUDIT_PIXEL_DIFFERENCE):
    """One row per member of each duplicate group of the cleaned ``catalog``.

    Parameters
    ----------
    catalog : pandas.DataFrame
        The cleaned catalog (``id``, ``category``, and ``image_sha1``,
        ``image_phash``, ``image_phash_mirror`` and ``clean_title`` where it has them).
    max_distance : int
        Bits in which two photos' perceptual hashes may differ and still be one photo.
    max_difference : float
        Mean absolute difference of two such photos' thumbnails (0-255) below which
        they are one photo.

    Returns
    -------
    pandas.DataFrame
        ``group`` (``<kind>-<number>``), ``kind`` (:data:`KINDS`), ``group_size``,
        ``categories_disagree`` (whether the members are filed under more than one
        path), ``id`` and ``category``; groups with disagreeing members first, then
        the largest.
    """
    groups = {}
    if "image_sha1" in catalog:
        groups["exact_image"] = pd.factorize(catalog["image_sha1"])[0]  # -1: no image
        groups["near_image"] = _near_images(catalog, max_distance, max_difference)
    if "clean_title" in catalog:
        groups["same_title"] = pd.factorize(catalog["clean_title"])[0]
    parts = []
    for kind, labels in groups.items():
        members = _members(labels)
        if kind == "near_image" and "exact_image" in groups:
            # A group of copies of one file is already an exact group: near groups are the rest.
            files = members.assign(file=catalog["image_sha1"].to_numpy()[members["row"]])
            members = members[files.groupby("label")["file"].transform("nunique").to_numpy() > 1]
        if members.empty:
            continue
        table = catalog.iloc[members["row"]][["id", "category"]].reset_index(drop=True)
        table.insert(0, "label", members["label"].to_numpy())
        table["group_size"] = table.groupby("label")["id"].transform("size")
        table["categories_disagree"] = table.groupby("label")["category"].transform("nunique") > 1
        table = table.sort_values(["categories_disagree", "group_size", "label"], ascending=[False, False, True])
        numbers = pd.factorize(table["label"])[0] + 1
        table.insert(0, "group", [f"{kind}-{n}" for n in numbers])
        table.insert(1, "kind", kind)
        parts.append(table.drop(columns="label"))
    columns = ["group", "kind", "id", "category", "group_size", "categories_disagree"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]


def summarize(duplicates):
    """Groups and items per kind, and the groups whose members disagree on their category."""
    out = {}
    for kind, part in duplicates.groupby("kind", sort=False):
        by_group = part.groupby("group")["categories_disagree"].first()
        out[kind] = {"groups": int(len(by_group)), "items": int(len(part)),
                     "groups_disagreeing_on_category": int(by_group.sum())}
    return out


def _near_images(catalog, max_distance, max_difference):
    """Group labels joining photos that are one photo: hashes (or one's and the other's mirror's) within
    ``max_distance`` bits, and thumbnails within ``max_difference``."""
    rows = np.flatnonzero(catalog["image_phash"].notna().to_numpy())
    codes = _codes(catalog["image_phash"].to_numpy()[rows])
    index = faiss.IndexBinaryFlat(64)
    index.add(codes)
    queries = [codes] + ([_codes(catalog["image_phash_mirror"].to_numpy()[rows])]
                         if "image_phash_mirror" in catalog else [])
    pairs = np.concatenate([np.stack(_pairs(index, q, max_distance), axis=1) for q in queries])
    pairs = np.unique(np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1), axis=0)
    # Product shots on white of one cut (a shirt in five colours) share their hash, which reads brightness
    # only at a coarse scale: the pixels of small thumbnails tell a copy from a sibling.
    paths = catalog["image_path"].to_numpy()[rows]
    thumbnails = {r: _thumbnail(config.project_path(paths[r]))
                  for r in progress_bar(np.unique(pairs), desc="comparing similar photos", unit="image")}
    pairs = pairs[np.array([_difference(thumbnails[a], thumbnails[b]) <= max_difference for a, b in pairs], bool)]
    graph = coo_matrix((np.ones(len(pairs), dtype=np.int8), (pairs[:, 0], pairs[:, 1])), shape=(len(rows), len(rows)))
    _, components = connected_components(graph, directed=False)
    labels = np.full(len(catalog), -1)
    labels[rows] = components
    return labels


def _thumbnail(path):
    """A ``THUMBNAIL``-pixel square of the whole photo (``None`` if it cannot be read), as int16 for differences."""
    try:
        with open_image(path) as image:
            square = ImageOps.pad(to_rgb(image), (THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS, color=BACKGROUND)
    except (OSError, ShoplensError):
        return None
    return np.asarray(square, dtype=np.int16)


def _difference(a, b):
    """The mean absolute difference of two thumbnails' pixels (0-255), the second as it is or mirrored."""
    if a is None or b is None:
        return np.inf
    return min(np.abs(a - b).mean(), np.abs(a - b[:, ::-1]).mean())


def _codes(hex_hashes):
    """64-bit hashes written in hex, as FAISS's binary codes: 8 bytes each."""
    return np.frombuffer(b"".join(bytes.fromhex(h) for h in hex_hashes), dtype=np.uint8).reshape(-1, 8)


def _pairs(index, queries, max_distance):
    """Every (query, indexed) pair within ``max_distance`` bits; FAISS's radius is exclusive."""
    lims, _, found = index.range_search(queries, max_distance + 1)
    return np.repeat(np.arange(len(queries)), np.diff(lims).astype(np.int64)), found


def _members(labels):
    """Rows of the groups with more than one member: ``row`` and ``label``."""
    members = pd.DataFrame({"row": np.arange(len(labels)), "label": labels})
    members = members[members["label"] >= 0]
    return members[members.groupby("label")["row"].transform("size") > 1]
