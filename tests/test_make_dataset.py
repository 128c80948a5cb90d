import json

import numpy as np
import pandas as pd
import pytest
from conftest import CATEGORIES, SHARED_FASHION, make_catalog, run_cli, word, write_image
from PIL import Image

from shoplens import ShoplensError
from shoplens.data.catalog import CatalogColumns
from shoplens.data.make_dataset import make_dataset


def run(tmp_path, catalog, **options):
    options.setdefault("min_items", 5)
    return make_dataset(catalog, interim_dir=tmp_path / "interim", processed_dir=tmp_path / "processed",
                        progress=False, **options)


def splits(tmp_path):
    return {name: pd.read_parquet(tmp_path / "processed" / "splits" / f"{name}.parquet")
            for name in ("train", "validate", "test")}


def test_bad_rows_are_skipped_and_counted_by_reason(tmp_path):
    images = tmp_path / "cat" / "images"
    images.mkdir(parents=True)
    (images / "empty.jpg").write_bytes(b"")
    (images / "text.jpg").write_text("not an image")
    write_image(images / "whole.jpg", (10, 20, 30), size=(64, 64))
    (images / "truncated.jpg").write_bytes((images / "whole.jpg").read_bytes()[:300])
    bad = [
        {"id": "0000", "title": "duplicate of the first item", "image": "0000.jpg", "category": CATEGORIES[0]},
        {"id": "e1", "title": "", "image": "whole.jpg", "category": CATEGORIES[0]},
        {"id": "e2", "title": "123 !!", "image": "whole.jpg", "category": CATEGORIES[0]},
        {"id": "m1", "title": "no image file", "image": "nowhere.jpg", "category": CATEGORIES[0]},
        {"id": "m2", "title": "no image named", "image": "", "category": CATEGORIES[0]},
        {"id": "z1", "title": "empty image file", "image": "empty.jpg", "category": CATEGORIES[0]},
        {"id": "c1", "title": "text file as image", "image": "text.jpg", "category": CATEGORIES[0]},
        {"id": "c2", "title": "truncated image", "image": "truncated.jpg", "category": CATEGORIES[0]},
        {"id": "n1", "title": "no category", "image": "whole.jpg", "category": ""},
        {"id": "r1", "title": "rare one", "image": "whole.jpg", "category": "Home > Decor > Vases"},
    ]
    catalog = make_catalog(tmp_path / "cat", rows=bad)
    summary = run(tmp_path, catalog)

    assert summary["rows_read"] == 36 + len(bad)
    assert summary["excluded"] == {
        "duplicate_id": 1, "empty_title": 2, "missing_image": 2, "empty_image": 1,
        "corrupt_image": 2, "missing_category": 1, "rare_category": 1,
    }
    assert summary["rows_kept"] == 36
    assert sum(summary["splits"].values()) == 36
    kept = pd.concat(splits(tmp_path).values())
    assert kept["id"].is_unique and set(kept["id"]).isdisjoint({"e1", "e2", "m1", "c1", "c2", "n1", "r1"})


def test_malformed_csv_rows_are_counted(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    with open(catalog / "catalog.csv", "a") as f:
        f.write("x1,too,many,fields,here,and,more,still\n")
    summary = run(tmp_path, catalog)
    assert summary["excluded"]["malformed_row"] == 1
    assert summary["rows_read"] == 37


def test_split_is_stratified_seeded_and_complete(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_per_category=40)
    summary = run(tmp_path, catalog)
    parts = splits(tmp_path)
    assert summary["splits"] == {"train": 84, "validate": 18, "test": 18}
    for part in parts.values():
        assert set(part["category"]) == set(CATEGORIES)
    assert set(parts["train"]["id"]).isdisjoint(parts["test"]["id"])

    again = tmp_path / "again"
    make_dataset(catalog, min_items=5, interim_dir=again / "interim", processed_dir=again / "processed",
                 progress=False)
    again_test = pd.read_parquet(again / "processed" / "splits" / "test.parquet")
    assert again_test["id"].tolist() == parts["test"]["id"].tolist()
    other = run(tmp_path / "other", catalog, seed=1)
    assert other["data_version"] != summary["data_version"]


def test_levels_and_cleaned_titles(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    run(tmp_path, catalog)
    train = splits(tmp_path)["train"]
    row = train[train["category"] == "Apparel > Topwear > Tshirts"].iloc[0]
    assert (row["product_category"], row["product_type"], row["product_details"]) == ("Apparel", "Topwear", "Tshirts")
    assert row["clean_title"].split()[1:3] == ["tshirt", "model"] and row["clean_title"].split()[-1] == "blue"


def test_paths_are_cut_or_padded_to_the_levels(tmp_path):
    rows = [{"id": f"d{i}", "title": "deep item", "category": "A > B > C > D", "image": "0000.jpg"} for i in range(6)]
    rows += [{"id": f"s{i}", "title": "shallow item", "category": "A > E", "image": "0000.jpg"} for i in range(6)]
    catalog = make_catalog(tmp_path / "cat", rows=rows)
    run(tmp_path, catalog)
    table = pd.concat(splits(tmp_path).values())
    assert set(table["category"]) >= {"A > B > C", "A > E > E"}
    run(tmp_path / "two", catalog, levels=2)
    two = pd.concat(splits(tmp_path / "two").values())
    assert {"level_1", "level_2"} <= set(two.columns) and "A > B" in set(two["category"])


def test_subsample_keeps_every_class(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_per_category=40)
    summary = run(tmp_path, catalog, subsample=0.5)
    assert summary["rows_kept"] == 60 and summary["rows_dropped_by_subsample"] == 60
    assert summary["classes_per_level"]["product_details"] == 3


def test_fashion_layout_and_named_columns(tmp_path):
    folder = tmp_path / "fashion"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i in range(30):
        kind = ["Tshirts", "Jeans", "Watches"][i % 3]
        rows.append({"id": 100 + i, "gender": "Men", "masterCategory": "Apparel", "subCategory": "Wear",
                     "articleType": kind, "baseColour": "Blue", "season": "Fall", "year": 2011,
                     "usage": "Casual", "productDisplayName": f"Roadster Men Blue {kind} {word(i)}"})
        write_image(folder / "images" / f"{100 + i}.jpg", (i * 8, 50, 50))
    pd.DataFrame(rows).to_csv(folder / "styles.csv", index=False)
    summary = run(tmp_path, folder, min_items=3)
    assert summary["layout"] == "fashion" and summary["rows_kept"] == 30
    # baseColour is named colour, as in the demo, so that a filter has one name in every catalog.
    assert summary["attributes"] == ["gender", "colour", "season", "year", "usage"]
    assert summary["classes_per_level"] == {"product_category": 1, "product_type": 1, "product_details": 3}

    pd.DataFrame(rows).rename(columns={"id": "sku", "productDisplayName": "name"}).assign(
        image=[f"{r['id']}.jpg" for r in rows]).to_csv(folder / "other.csv", index=False)
    columns = CatalogColumns(id="sku", title="name", image="image",
                             level_cols=("masterCategory", "subCategory", "articleType"))
    summary = run(tmp_path / "named", folder / "other.csv", columns=columns, min_items=3)
    assert summary["layout"] == "generic" and summary["rows_kept"] == 30


def test_image_only_and_text_only_catalogs(tmp_path):
    image_only = run(tmp_path / "a", make_catalog(tmp_path / "img", titles=False))
    assert image_only["has_images"] and not image_only["has_titles"] and image_only["rows_kept"] == 36
    text_only = run(tmp_path / "b", make_catalog(tmp_path / "txt", images=False))
    assert text_only["has_titles"] and not text_only["has_images"] and text_only["rows_kept"] == 36
    assert "image_path" not in pd.read_parquet(tmp_path / "b" / "processed" / "splits" / "train.parquet")


def test_cleaned_table_is_reused_until_the_catalog_or_its_images_change(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    run(tmp_path, catalog)
    cleaned = (tmp_path / "interim" / "catalog").resolve()
    run(tmp_path, catalog, min_items=6)  # another split of the same cleaned table
    assert (tmp_path / "interim" / "catalog").resolve() == cleaned
    (catalog / "images" / "0000.jpg").unlink()
    assert run(tmp_path, catalog)["excluded"]["missing_image"] == 1
    assert not cleaned.exists()  # the previous version is gone, the new one published


@pytest.mark.parametrize("options, message", [
    ({"language": "klingon"}, "unknown language 'klingon'"),
    ({"split_ratios": (0.85, 0.15, 0.0)}, "'test' is 0.0: that split would be empty"),
    ({"split_ratios": (0.5, 0.2, 0.2)}, "must add up to 1"),
    ({"min_items": 1000}, "no rows left to split"),
    ({"subsample": 0.0}, "SUBSAMPLE must be in (0, 1]"),
])
def test_bad_options_stop_with_a_message_and_write_nothing(tmp_path, options, message):
    catalog = make_catalog(tmp_path / "cat")
    with pytest.raises(ShoplensError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        run(tmp_path, catalog, **options)
    assert not (tmp_path / "processed").exists() or not any((tmp_path / "processed").iterdir())


def test_split_too_small_for_stratification_is_an_error(tmp_path):
    catalog = make_catalog(tmp_path / "cat", n_per_category=3)
    with pytest.raises(ShoplensError, match="cannot split 9 rows in 3 categories"):
        run(tmp_path, catalog, min_items=1)


def test_failed_run_keeps_previous_outputs(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    first = run(tmp_path, catalog)
    before = {p.name: p.read_bytes() for p in (tmp_path / "processed" / "splits").iterdir()}
    with pytest.raises(ShoplensError):
        run(tmp_path, catalog, min_items=1000)
    after = {p.name: p.read_bytes() for p in (tmp_path / "processed" / "splits").iterdir()}
    assert after == before
    assert json.loads(after["summary.json"])["data_version"] == first["data_version"]


@pytest.mark.parametrize("setup, message", [
    (lambda d: None, "no such file or folder"),
    (lambda d: d.mkdir(), "folder holds neither catalog.csv nor styles.csv"),
    (lambda d: d.write_bytes(b""), "empty file; a catalog starts with a header line"),
    (lambda d: d.write_bytes(b"id,title\n\xff\xfe\x00bad,\x81\n"), "not UTF-8 text (byte 0xff at offset 9)"),
    (lambda d: d.write_text("id,title,image,category\n"), "the header has no rows under it"),
    (lambda d: d.write_text("id,title,image\n1,a,1.jpg\n"), "missing column 'category' (found: id, title, image)"),
    (lambda d: d.write_text("sku,category\n1,A > B\n"), "missing column 'id' (found: sku, category)"),
    (lambda d: d.write_text("id,category\n1,A > B\n"), "neither titles nor images"),
])
def test_bad_catalogs_give_one_line_errors(tmp_path, setup, message):
    path = tmp_path / "catalog.csv"
    setup(path)
    result = run_cli("make-dataset", "--catalog", path, cwd=tmp_path)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data" / "processed").exists()


def test_a_named_column_must_exist(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    result = run_cli("make-dataset", "--catalog", catalog, "--title-col", "name", cwd=tmp_path)
    assert result.returncode != 0 and "missing column 'name'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(not SHARED_FASHION.is_dir(), reason="shared fashion-products dataset not present")
def test_real_fashion_catalog(tmp_path):
    summary = run(tmp_path, SHARED_FASHION, min_items=10)
    assert summary["rows_read"] == 7689
    assert summary["classes_per_level"]["product_details"] == 45
    assert all(n > 1000 for n in summary["splits"].values())


def test_rows_cut_short_or_run_together_by_a_quote_are_counted_not_fatal(tmp_path):
    catalog = make_catalog(tmp_path / "cat")
    header, *rows = (catalog / "catalog.csv").read_text().splitlines()
    rows[3] = rows[3].split(",")[0] + ",Brand1 shirt cut short"  # stops before the category
    rows[7] = rows[7].replace(",", ',"', 1)  # a quote opened and never closed
    (catalog / "catalog.csv").write_text("\n".join([header, *rows]) + "\n")
    summary = run(tmp_path, catalog)
    assert summary["excluded"]["malformed_row"] == 2 and summary["malformed_lines"] == [5, 9]
    assert summary["rows_read"] == 36 and summary["rows_kept"] == 34

    (catalog / "catalog.csv").write_text(f"{header}\n{rows[3]}\n")  # nothing but a row cut short
    with pytest.raises(ShoplensError, match=r"none of its 1 rows has the header's columns \(malformed: line 2\)"):
        run(tmp_path, catalog)


@pytest.mark.parametrize("category, reason", [
    (" > ", "missing_category"),
    ("Apparel >  > Jeans", "empty_level"),
    ("Apparel > Topwear >", "empty_level"),
])
def test_empty_levels_are_refused_never_shifted(tmp_path, category, reason):
    bad = [{"id": f"b{i}", "title": "odd path", "image": "0000.jpg", "category": category} for i in range(6)]
    summary = run(tmp_path, make_catalog(tmp_path / "cat", rows=bad))
    assert summary["excluded"] == {reason: 6}
    kept = pd.concat(splits(tmp_path).values())
    assert set(kept["category"]) == set(CATEGORIES) and not kept["category"].str.contains(">  >|> >").any()


def test_16_bit_and_transparent_images_decode_as_they_look(tmp_path):
    from shoplens.data.images import load_image

    grey = np.full((20, 20), 30000, dtype=np.uint16)  # a mid-dark grey, 16 bits a sample
    Image.fromarray(grey).save(tmp_path / "grey16.png")
    assert abs(int(load_image(tmp_path / "grey16.png", 20).mean()) - 30000 * 255 // 65535) <= 1
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[5:15, 5:15] = (200, 0, 0, 255)  # an opaque red square on a transparent background
    Image.fromarray(rgba).save(tmp_path / "transparent.png")
    pixels = load_image(tmp_path / "transparent.png", 20)
    assert (pixels[0, 0] == 255).all() and tuple(pixels[10, 10]) == (200, 0, 0)


def test_huge_images_are_refused_before_decoding(tmp_path):
    images = tmp_path / "cat" / "images"
    images.mkdir(parents=True)
    Image.new("1", (9000, 5000)).save(images / "huge.png")  # 45 megapixels in a few kilobytes
    assert (images / "huge.png").stat().st_size < 100_000
    bad = [{"id": f"h{i}", "title": "huge", "image": "huge.png", "category": CATEGORIES[0]} for i in range(2)]
    summary = run(tmp_path, make_catalog(tmp_path / "cat", rows=bad))
    assert summary["excluded"] == {"image_too_large": 2}


def catalog_with_duplicates(folder):
    """36 items, 12 a category, in which colour variants share a title and some photos are filed twice: as the
    same file, and re-encoded smaller at another JPEG quality."""
    catalog = make_catalog(folder, n_per_category=12)
    table = pd.read_csv(catalog / "catalog.csv", dtype=str)
    for c in range(3):  # four variants of one product per category share its title
        rows = table.index[table["id"].str.startswith(str(c))][:4]
        table.loc[rows, "title"] = table.loc[rows[0], "title"]
    images = catalog / "images"
    rng = np.random.default_rng(0)
    for item in table["id"]:  # photos with structure, so the perceptual hash tells them apart
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).resize((64, 64)).save(images / f"{item}.jpg")
    table.loc[table["id"] == "0010", "image"] = "0011.jpg"  # the same file under two products
    Image.open(images / "1011.jpg").resize((58, 58)).save(images / "1010.jpg", quality=70)  # re-encoded
    table.to_csv(catalog / "catalog.csv", index=False)
    return catalog


@pytest.mark.parametrize("group_split", ["title,image", "title", "image"])
def test_duplicates_never_cross_the_splits(tmp_path, group_split):
    catalog = catalog_with_duplicates(tmp_path / "cat")
    summary = run(tmp_path, catalog, group_split=group_split, split_ratios=(0.5, 0.25, 0.25))
    parts = splits(tmp_path)
    keys = {"title": ["clean_title"], "image": ["image_sha1", "image_phash"]}
    for by in group_split.split(","):
        for column in keys[by]:
            where = pd.concat([part[[column]].assign(split=name) for name, part in parts.items()])
            crossing = where.groupby(column)["split"].nunique()
            assert (crossing == 1).all(), f"{column}: {list(crossing[crossing > 1].index)}"
    assert sum(summary["splits"].values()) == 36
    assert summary["duplicates"]["grouped_by"] == group_split.split(",")
    shared = {"title,image": 12 + 2 + 2, "title": 12, "image": 4}[group_split]
    assert summary["duplicates"]["items_in_shared_groups"] == shared


def test_without_groups_duplicates_do_cross(tmp_path):
    summary = run(tmp_path, catalog_with_duplicates(tmp_path / "cat"), group_split="none",
                  split_ratios=(0.5, 0.25, 0.25))
    assert summary["duplicates"]["items_in_shared_groups"] == 0
    assert summary["duplicates"]["test_items_with_a_train_title"] > 0
