import json

import numpy as np
import pandas as pd
import pytest
from conftest import CATEGORIES, make_catalog, run_cli
from PIL import Image

from shoplens import ShoplensError
from shoplens.data.images import load_image
from shoplens.data.make_dataset import make_dataset
from shoplens.features.build_features import build_features, load_features, load_images


def prepare(tmp_path, **catalog_options):
    catalog = make_catalog(tmp_path / "cat", n_per_category=20, **catalog_options)
    processed = tmp_path / "processed"
    make_dataset(catalog, min_items=5, interim_dir=tmp_path / "interim", processed_dir=processed, progress=False)
    return processed


def test_images_are_decoded_once_in_split_order(tmp_path):
    processed = prepare(tmp_path)
    summary = build_features(image_size=16, processed_dir=processed, workers=1, progress=False)
    features_dir = processed / "features"
    for split in ("train", "validate", "test"):
        table = pd.read_parquet(processed / "splits" / f"{split}.parquet")
        images = load_images(split, features_dir, 16)
        assert images.shape == (len(table), 16, 16, 3) and images.dtype == np.uint8
        assert summary["splits"][split] == len(table)
        for i in (0, len(table) - 1):
            np.testing.assert_array_equal(images[i], load_image(table["image_path"][i], 16))
    # the per-category colours survive resizing: images of different categories differ
    train = pd.read_parquet(processed / "splits" / "train.parquet")
    reds = load_images("train", features_dir, 16)[..., 0].mean(axis=(1, 2))
    by_class = pd.Series(reds).groupby(train["category"]).mean()
    assert by_class.max() - by_class.min() > 100


def test_parallel_decoding_gives_the_same_arrays(tmp_path):
    processed = prepare(tmp_path)
    build_features(image_size=16, processed_dir=processed, workers=1, progress=False)
    one = np.array(load_images("train", processed / "features", 16))
    build_features(image_size=16, processed_dir=processed, workers=2, progress=False)
    np.testing.assert_array_equal(one, load_images("train", processed / "features", 16))


def test_non_square_images_are_padded_not_stretched(tmp_path):
    path = tmp_path / "wide.png"
    Image.new("RGB", (40, 20), (0, 0, 0)).save(path)
    pixels = load_image(str(path), 20)
    assert pixels.shape == (20, 20, 3)
    assert (pixels[0] == 255).all() and (pixels[10] == 0).all()  # white bands above and below


def test_vocabulary_and_labels_come_from_train_only(tmp_path):
    processed = prepare(tmp_path)
    test = pd.read_parquet(processed / "splits" / "test.parquet")
    test.loc[0, "clean_title"] = "onlyintest"
    test.to_parquet(processed / "splits" / "test.parquet", index=False)
    summary = build_features(processed_dir=processed, progress=False)
    features = load_features(processed / "features")
    assert "onlyintest" not in features["vocabulary"]
    assert features["vocabulary"][:3] == ["blue", "brand", "model"]  # in every title: most frequent first
    assert features["labels"]["paths"] == sorted(CATEGORIES)
    assert features["labels"]["levels"]["product_category"] == ["Apparel", "Footwear"]
    data = json.loads((processed / "splits" / "summary.json").read_text())
    assert summary["data_version"] == data["data_version"] == features["data_version"]


def test_vocabulary_size_is_capped(tmp_path):
    processed = prepare(tmp_path)
    build_features(vocab_size=3, processed_dir=processed, progress=False)
    assert load_features(processed / "features")["vocabulary"] == ["blue", "brand", "model"]


def test_text_only_and_image_only_catalogs(tmp_path):
    text = prepare(tmp_path / "text", images=False)
    summary = build_features(processed_dir=text, progress=False)
    assert not summary["has_images"] and not list((text / "features").glob("images_*.npy"))
    with pytest.raises(ShoplensError, match="make features"):
        load_images("train", text / "features")

    image = prepare(tmp_path / "image", titles=False)
    summary = build_features(processed_dir=image, progress=False, image_size=8)
    assert summary["has_images"] and not (image / "features" / "vocabulary.txt").exists()


def test_features_before_data_names_the_make_target(tmp_path):
    result = run_cli("build-features", cwd=tmp_path)
    assert result.returncode != 0 and "data/processed/splits: not found; run `make data`" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_feature_options(tmp_path):
    processed = prepare(tmp_path)
    with pytest.raises(ShoplensError, match="IMAGE_SIZE must be from 8 to 1024 pixels, got 2"):
        build_features(image_size=2, processed_dir=processed, progress=False)
    assert not (processed / "features").exists()
