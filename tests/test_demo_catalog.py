"""Tests of the synthetic demo catalog: determinism, layout, tree, attributes, titles, image signal."""
import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from shoplens.data import demo_catalog
from shoplens.data.demo_catalog import (
    CATEGORY_SEP,
    CATEGORY_TREE,
    COLOURS,
    GENDERS,
    SEASONS,
    generate_demo_catalog,
    leaf_probabilities,
)

COLUMNS = ["id", "image", "title", "category", "gender", "season", "colour"]


def read_rows(out_dir):
    with open(Path(out_dir) / "catalog.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def leaf(row):
    return row["category"].split(CATEGORY_SEP)[-1]


def image_bytes(out_dir):
    images = Path(out_dir) / "images"
    return {p.name: p.read_bytes() for p in sorted(images.iterdir())}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A 300-item catalog at the default image size."""
    out = tmp_path_factory.mktemp("small")
    summary = generate_demo_catalog(out, n=300, seed=3, workers=1, progress=False)
    return out, summary, read_rows(out)[1]


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """A 2000-item catalog with tiny images, for statistics over rows."""
    out = tmp_path_factory.mktemp("large")
    generate_demo_catalog(out, n=2000, seed=11, image_size=32, workers=1, progress=False)
    return read_rows(out)[1]


def test_same_seed_gives_identical_files_whatever_the_workers(tmp_path):
    one = generate_demo_catalog(tmp_path / "a", n=60, seed=5, image_size=48, workers=1, progress=False)
    two = generate_demo_catalog(tmp_path / "b", n=60, seed=5, image_size=48, workers=2, progress=False)
    assert (tmp_path / "a" / "catalog.csv").read_bytes() == (tmp_path / "b" / "catalog.csv").read_bytes()
    assert image_bytes(tmp_path / "a") == image_bytes(tmp_path / "b")
    assert {k: v for k, v in one.items() if k not in ("seconds", "csv_path")} == {
        k: v for k, v in two.items() if k not in ("seconds", "csv_path")
    }


def test_same_seed_twice_in_one_process_is_identical(tmp_path):
    for name in ("a", "b"):
        generate_demo_catalog(tmp_path / name, n=30, seed=9, image_size=40, workers=1, progress=False)
    assert (tmp_path / "a" / "catalog.csv").read_bytes() == (tmp_path / "b" / "catalog.csv").read_bytes()
    assert image_bytes(tmp_path / "a") == image_bytes(tmp_path / "b")


def test_different_seed_gives_different_catalog(tmp_path):
    for name, seed in (("a", 1), ("b", 2)):
        generate_demo_catalog(tmp_path / name, n=40, seed=seed, image_size=32, workers=1, progress=False)
    assert (tmp_path / "a" / "catalog.csv").read_bytes() != (tmp_path / "b" / "catalog.csv").read_bytes()
    a, b = image_bytes(tmp_path / "a"), image_bytes(tmp_path / "b")
    assert a.keys() == b.keys()
    assert sum(a[k] != b[k] for k in a) == len(a)


def test_csv_does_not_depend_on_image_size(tmp_path):
    for name, size in (("a", 32), ("b", 64)):
        generate_demo_catalog(tmp_path / name, n=50, seed=4, image_size=size, workers=1, progress=False)
    assert (tmp_path / "a" / "catalog.csv").read_bytes() == (tmp_path / "b" / "catalog.csv").read_bytes()


def test_columns_ids_and_image_paths(small):
    out, _, rows = small
    columns, _ = read_rows(out)
    assert columns == COLUMNS
    assert len(rows) == 300
    ids = [r["id"] for r in rows]
    assert ids == [str(100001 + i) for i in range(300)]
    assert all(r["image"] == f"{r['id']}.jpg" for r in rows)
    # Only the catalog and the images: the temporary CSV was renamed, not left behind.
    assert sorted(p.name for p in out.iterdir()) == ["catalog.csv", "images"]


def test_every_image_is_a_128px_rgb_jpeg(small):
    out, _, rows = small
    assert len(list((out / "images").iterdir())) == len(rows)
    for row in rows:
        with Image.open(out / "images" / row["image"]) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (128, 128)


def test_image_size_option(tmp_path):
    generate_demo_catalog(tmp_path, n=5, image_size=72, workers=1, progress=False)
    for path in (tmp_path / "images").iterdir():
        with Image.open(path) as image:
            assert image.size == (72, 72) and image.mode == "RGB"


def levels(paths):
    parts = [p.split(CATEGORY_SEP) for p in paths]
    assert all(len(p) == 3 for p in parts)
    return [len({CATEGORY_SEP.join(p[: k + 1]) for p in parts}) for k in range(3)]


def test_category_tree_has_three_levels():
    paths = [CATEGORY_SEP.join((a, b, c)) for a, bs in CATEGORY_TREE.items() for b, cs in bs.items() for c in cs]
    counts = levels(paths)
    assert counts[0] >= 3 and counts[1] >= 12 and counts[2] >= 27
    assert set(leaf_probabilities()) == set(paths)
    # Leaf names alone identify a leaf, so the product type is unambiguous.
    assert len({p.split(CATEGORY_SEP)[-1] for p in paths}) == len(paths)


def test_small_catalog_covers_the_whole_tree(small):
    _, summary, rows = small
    counts = levels([r["category"] for r in rows])
    assert counts == levels(list(leaf_probabilities()))
    assert sum(summary["level1_counts"].values()) == 300
    assert summary["smallest_leaf"][1] >= 1


def test_leaf_probabilities_are_imbalanced_and_fixed():
    probs = leaf_probabilities()
    assert sum(probs.values()) == pytest.approx(1.0)
    assert max(probs.values()) / min(probs.values()) >= 20
    assert max(probs, key=probs.get) == "Apparel > Topwear > Tshirts"


def test_large_catalog_is_imbalanced_like_the_tree(large):
    counts = {}
    for row in large:
        counts[row["category"]] = counts.get(row["category"], 0) + 1
    assert len(counts) == 27
    assert max(counts.values()) / min(counts.values()) >= 10
    probs = leaf_probabilities()
    tshirts = "Apparel > Topwear > Tshirts"
    assert counts[tshirts] / 2000 == pytest.approx(probs[tshirts], abs=0.03)


def test_summary_matches_the_csv(tmp_path):
    summary = generate_demo_catalog(tmp_path, n=120, seed=8, image_size=32, workers=1, progress=False)
    _, rows = read_rows(tmp_path)
    leaf_counts = {}
    level1_counts = {}
    for row in rows:
        leaf_counts[row["category"]] = leaf_counts.get(row["category"], 0) + 1
        level1 = row["category"].split(CATEGORY_SEP)[0]
        level1_counts[level1] = level1_counts.get(level1, 0) + 1
    assert summary["n"] == 120 and summary["seed"] == 8 and summary["image_size"] == 32
    assert summary["level1_counts"] == level1_counts
    assert summary["largest_leaf"][1] == max(leaf_counts.values())
    assert leaf_counts[summary["largest_leaf"][0]] == summary["largest_leaf"][1]
    assert leaf_counts[summary["smallest_leaf"][0]] == summary["smallest_leaf"][1] == min(leaf_counts.values())
    assert summary["seconds"] > 0


def test_attributes_are_plausible_for_the_product(large):
    assert {r["gender"] for r in large} <= set(GENDERS)
    assert {r["season"] for r in large} <= set(SEASONS)
    assert {r["colour"] for r in large} <= set(COLOURS)
    womenswear = {"Dresses", "Skirts", "Heels", "Handbags", "Jumpsuits", "Tops"}
    for row in large:
        if leaf(row) in womenswear:
            assert row["gender"] in ("Women", "Girls"), row
        if leaf(row) in ("Coats", "Sweaters", "Boots"):
            assert row["season"] in ("Winter", "Fall", "Spring"), row
        if leaf(row) in ("Shorts", "Sandals", "Flip Flops", "Tops", "Sunglasses"):
            assert row["season"] != "Winter", row
    # Several genders and all seasons do occur, so the columns carry information.
    assert len({r["gender"] for r in large}) == 5
    assert len({r["season"] for r in large}) == 4
    watches = [r["gender"] for r in large if leaf(r) == "Watches"]
    assert watches.count("Unisex") / len(watches) > 0.15


def test_colour_column_is_the_colour_drawn(small):
    out, _, rows = small
    names = list(COLOURS)
    palette = np.array([COLOURS[c] for c in names], dtype=float)
    # White items are too close to the background to separate reliably.
    checked = [r for r in rows if r["colour"] != "White"]
    hits = 0
    for row in checked:
        pixels = np.asarray(Image.open(out / "images" / row["image"]), dtype=float)
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        item = pixels[np.abs(pixels - np.median(border, axis=0)).sum(axis=-1) > 60]
        nearest = ((item[:, None, :] - palette[None]) ** 2).sum(axis=-1).argmin(axis=1)
        hits += names[np.bincount(nearest, minlength=len(names)).argmax()] == row["colour"]
    assert hits / len(checked) > 0.75


def test_titles_are_noisy_like_a_web_shop(large):
    titles = [r["title"] for r in large]
    empty = sum(t == "" for t in titles)
    assert 0.004 * len(titles) <= empty <= 0.03 * len(titles)
    named = [r for r in large if r["title"]]
    mentions = sum(
        any(word.lower() in r["title"].lower() for word in demo_catalog._PRODUCT_WORDS[leaf(r)]) for r in named
    )
    # Text is informative but not perfect: some titles miss the product word or misspell it.
    assert 0.8 * len(named) < mentions < 0.99 * len(named)
    assert sum(t.isupper() for t in titles if t) > 0.02 * len(named)
    assert sum(t.islower() for t in titles if t) > 0.02 * len(named)
    assert len(set(titles)) > 0.9 * len(titles)


def test_images_let_a_linear_model_recognise_the_leaf(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    generate_demo_catalog(tmp_path, n=1500, seed=7, image_size=64, workers=1, progress=False)
    _, rows = read_rows(tmp_path)
    features = np.stack([
        np.asarray(Image.open(tmp_path / "images" / r["image"]).convert("L").resize((16, 16), Image.BILINEAR),
                   dtype=np.float32).ravel()
        for r in rows
    ])
    labels = np.array([r["category"] for r in rows])
    train, test = slice(0, 1000), slice(1000, None)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.03, max_iter=500))
    # A small fit; BLAS threads only fight each other (and any other job) for the cores.
    with threadpool_limits(1):
        model.fit(features[train], labels[train])
    accuracy = (model.predict(features[test]) == labels[test]).mean()
    values, counts = np.unique(labels[train], return_counts=True)
    majority = (labels[test] == values[counts.argmax()]).mean()
    assert accuracy > 3 / len(values)
    assert accuracy > 2 * majority


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n": 0}, "n"),
        ({"n": 2.5}, "n"),
        ({"image_size": 16}, "image_size"),
        ({"seed": -1}, "seed"),
        ({"workers": 0}, "workers"),
    ],
)
def test_bad_arguments_are_rejected(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate_demo_catalog(tmp_path, **{"n": 3, "progress": False, **kwargs})
    assert not (tmp_path / "catalog.csv").exists()


def test_cluttered_photos_record_a_box_that_holds_the_product(tmp_path):
    plain = generate_demo_catalog(tmp_path / "plain", n=40, seed=6, image_size=64, workers=1, progress=False)
    summary = generate_demo_catalog(tmp_path / "busy", n=40, seed=6, image_size=64, workers=1, progress=False,
                                    clutter=0.5)
    assert 10 <= summary["cluttered"] <= 30 and plain["cluttered"] == 0
    # The rows do not change, nor do the photos left plain; only a cluttered catalog lists boxes.
    assert (tmp_path / "plain" / "catalog.csv").read_bytes() == (tmp_path / "busy" / "catalog.csv").read_bytes()
    assert not (tmp_path / "plain" / "boxes.csv").exists()
    boxes = demo_catalog.read_boxes(tmp_path / "busy")
    _, rows = read_rows(tmp_path / "busy")
    assert list(boxes) == [r["id"] for r in rows]
    plain_images, busy_images = image_bytes(tmp_path / "plain"), image_bytes(tmp_path / "busy")
    busy = [r for r in rows if plain_images[r["image"]] != busy_images[r["image"]]]
    assert len(busy) == summary["cluttered"]
    def busy_border(row):  # the share of its border's pixels off the border's colour
        pixels = np.asarray(Image.open(tmp_path / "busy" / "images" / row["image"]), dtype=float)
        border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
        return (np.abs(border - np.median(border, axis=0)).sum(axis=-1) > 25).mean()

    assert np.mean([busy_border(r) for r in busy]) > 4 * np.mean([busy_border(r) for r in rows if r not in busy])
    in_colour = 0
    for row in busy:
        x0, y0, x1, y1 = boxes[row["id"]]
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
        assert max(x1 - x0, y1 - y0) <= 0.7 * 64  # small
        pixels = np.asarray(Image.open(tmp_path / "busy" / "images" / row["image"]), dtype=float)
        # The product's mask, drawn again by the same generator (the pattern draws nothing of its own), fills
        # the box to its four edges, and the photo shows the product's colour there.
        rng = np.random.default_rng([6, rows.index(row)])
        _, body = demo_catalog.render_cluttered(leaf(row), row["colour"], "Solid", 64, rng)
        assert demo_catalog.box_of(body) == (x0, y0, x1, y1)
        shown = np.median(pixels[body == 1], axis=0)
        in_colour += np.abs(shown - COLOURS[row["colour"]]).max() < 60
    assert in_colour >= 0.8 * len(busy)


def test_clutter_out_of_range_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="clutter"):
        generate_demo_catalog(tmp_path, n=3, progress=False, clutter=1.5)
