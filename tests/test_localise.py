"""Tests of object-centred crops: boxes by contrast with a plain background, by a model's activation maps, crops."""
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shoplens import ShoplensError
from shoplens.models import localise


def planted(n, size=64, seed=0, background="plain"):
    """Photos of one solid rectangle each (a random colour, size and place) with sensor noise, and its true box."""
    rng = np.random.default_rng(seed)
    if background == "plain":
        images = np.broadcast_to(rng.integers(200, 250, size=(n, 1, 1, 3)), (n, size, size, 3)).copy()
    else:
        images = rng.integers(0, 256, size=(n, size, size, 3))
    boxes = np.zeros((n, 4), dtype=int)
    for i in range(n):
        w, h = rng.integers(size // 4, size // 2, size=2)
        x0, y0 = rng.integers(2, size - w - 2), rng.integers(2, size - h - 2)  # off the border, as in a studio
        images[i, y0:y0 + h, x0:x0 + w] = rng.integers(20, 120, size=3)
        boxes[i] = x0, y0, x0 + w, y0 + h
    images = images + rng.integers(-8, 8, size=images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), boxes


def test_contrast_boxes_find_a_product_on_a_plain_background():
    images, truth = planted(40)
    assert localise.plain_background(images).all()
    found = localise.contrast_boxes(images, pad=0)
    assert localise.iou(found, truth).min() > 0.9
    # Padding grows a box on every side, never beyond the image.
    padded = localise.contrast_boxes(images)
    assert (padded[:, :2] <= found[:, :2]).all() and (padded[:, 2:] >= found[:, 2:]).all()
    assert padded.min() >= 0 and padded.max() <= 64


def test_a_busy_background_is_not_plain():
    images, _ = planted(10, background="noise")
    assert not localise.plain_background(images).any()


def test_mask_boxes_take_the_largest_region_of_each_image():
    masks = np.zeros((3, 20, 30), dtype=bool)
    masks[0, 2:4, 2:4] = True  # small
    masks[0, 10:18, 5:25] = True  # largest
    masks[1, 0:20, 29] = True  # a line along the right edge
    # masks[2] stays empty: the whole image
    boxes = localise.mask_boxes(masks, pad=0)
    assert boxes.tolist() == [[5, 10, 25, 18], [29, 0, 30, 20], [0, 0, 30, 20]]


def test_iou():
    assert localise.iou([[0, 0, 10, 10]], [[0, 0, 10, 10]]).tolist() == [1.0]
    assert localise.iou([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0] == pytest.approx(1 / 3)
    assert localise.iou([[0, 0, 10, 10]], [[20, 20, 30, 30]]).tolist() == [0.0]


def test_crop_keeps_the_product_square_and_inside_the_image():
    images = np.zeros((2, 40, 40, 3), dtype=np.uint8)
    images[0, 10:20, 0:30] = 255  # a wide product: its square crop is 30 pixels, centred on it
    images[1, 30:40, 30:40] = 255  # in a corner: the square is shifted inside the image
    crops = localise.crop(images, [[0, 10, 30, 20], [30, 30, 40, 40]], 16)
    assert crops.shape == (2, 16, 16, 3) and crops.dtype == np.uint8
    rows = crops[0, :, 8, 0] > 127
    assert rows[:4].sum() == 0 and rows[6:10].all() and rows[-4:].sum() == 0  # the middle third
    assert (crops[1] > 127).all()


@pytest.fixture(scope="module")
def colour_model():
    """A tiny image model trained to tell a reddish rectangle from a bluish one, anywhere on noise."""
    import keras

    from shoplens.models.build_model import build_model

    rng = np.random.default_rng(1)
    n, size = 384, 32
    images, boxes = planted(n, size, seed=2, background="noise")
    labels = rng.integers(0, 2, size=n)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        images[i, y0:y1, x0:x1] = (220, 30, 30) if labels[i] else (30, 30, 220)
    keras.utils.set_random_seed(0)
    model = build_model({"colour": 2}, image_size=size, backbone="simple", weights="none")
    model.compile(keras.optimizers.Adam(3e-3), {"colour": "sparse_categorical_crossentropy"})
    model.fit({"image": images}, {"colour": labels}, epochs=4, batch_size=32, verbose=0)
    return model


def test_activation_maps_point_at_the_product(colour_model):
    images, truth = planted(48, 32, seed=3, background="noise")
    for i, (x0, y0, x1, y1) in enumerate(truth):
        images[i, y0:y1, x0:x1] = (220, 30, 30) if i % 2 else (30, 30, 220)
    maps = localise.ActivationMaps(colour_model)(images)
    assert maps.shape == (48, 32, 32) and maps.max() <= 1.0
    boxes = localise.crop_boxes(images, localise.ActivationMaps(colour_model))
    overlap = localise.iou(boxes, truth)
    # A loose floor, far above what the whole image (or a centred box) would score.
    centred = localise.iou(np.tile([8, 8, 24, 24], (48, 1)), truth)
    assert np.median(overlap) > 0.4 and overlap.mean() > centred.mean() + 0.15


def test_activation_maps_read_the_weights_the_model_has_when_they_are_made(colour_model):
    images, _ = planted(8, 32, seed=4, background="noise")
    maps = localise.ActivationMaps(colour_model)
    before, weights = maps(images), colour_model.get_weights()
    try:
        colour_model.set_weights([w * 0.5 for w in weights])
        assert np.array_equal(maps(images), before)
        assert not np.allclose(localise.ActivationMaps(colour_model)(images), before)
    finally:
        colour_model.set_weights(weights)


def test_a_model_without_a_feature_map_is_refused():
    import keras

    image = keras.Input((8, 8, 3), dtype="uint8", name="image")
    output = keras.layers.Dense(2, activation="softmax", name="a")(keras.layers.Flatten()(image))
    with pytest.raises(ShoplensError, match="CROP=auto"):
        localise.ActivationMaps(keras.Model(image, {"a": output}))


def test_photo_box_undoes_the_padding_to_a_square():
    from shoplens.search.image_search import photo_box

    # A 100 x 50 photo fills a 64-pixel square's width and the middle 32 rows of its height.
    assert photo_box([0, 16, 64, 48], (100, 50), 64) == [0, 0, 100, 50]
    assert photo_box([32, 0, 64, 64], (100, 50), 64) == [50, 0, 100, 50]


def test_crop_auto_trains_on_the_crops_too_and_classifies_the_crop_of_each_photo(crop_project):
    import json

    from shoplens.data.make_dataset import load_split
    from shoplens.features.build_features import load_images
    from shoplens.models.predict_model import predict
    from shoplens.models.train_model import train_model
    from shoplens.models.trained import load_model

    processed, models = crop_project / "data" / "processed", crop_project / "models"
    meta = json.loads((models / "multilabel_image" / "model.json").read_text())
    photos = sum(len(load_split(split, processed)) for split in ("train", "validate"))
    assert meta["options"]["crop"] == "auto" and meta["stages"] == ["photos", "crops"]
    assert meta["stage_epochs"] == [1, 1]
    # The demo's studio photos: nearly every product found by contrast with its plain background.
    assert meta["products_found"]["photos"] == photos and meta["products_found"]["plain"] >= 0.95 * photos

    model, metadata = load_model("multilabel", "image", models, processed)
    images = load_images("test", processed / "features", metadata["image_size"])[:40]
    photos = load_split("test", processed)["image_path"][:40].tolist()
    read = predict(model, metadata, {"image": images}, photos).level_probs[-1]
    # The boxes are found on the model's input; the crops cut out of the photos themselves, sharper.
    boxes = localise.crop_boxes(images, localise.ActivationMaps(model))
    crops = localise.crop_photos(photos, boxes, images.shape[1], progress=False)
    level = metadata["levels"][-1]
    assert np.allclose(read, model.predict_on_batch({"image": crops})[level], atol=1e-5)
    assert not np.allclose(read, model.predict_on_batch({"image": images})[level], atol=1e-4)
    assert not np.array_equal(crops, localise.crop(images, boxes, images.shape[1]))

    dirs = {"processed_dir": processed, "features_dir": processed / "features", "models_dir": models}
    with pytest.raises(ShoplensError, match="CROP must be one of none, auto"):
        train_model("multilabel", "image", backbone="simple", weights="none", crop="centre", **dirs)
    # A model with no convolutional feature map to find the product with is refused before it trains.
    with pytest.raises(ShoplensError, match="CROP=auto: .* no convolutional feature map"):
        train_model("multilabel", "image", backbone="vit", weights="none", crop="auto", **dirs)


def test_crop_auto_embeds_crops_and_crops_every_query_photo(crop_project, gallery_project, tmp_path):
    from conftest import SHOPLENS
    from PIL import Image

    from shoplens.gallery.app import create_app
    from shoplens.gallery.thumbnails import Thumbnails
    from shoplens.models.extract_features import load_features_file
    from shoplens.search.repository import Repository

    processed, models = crop_project / "data" / "processed", crop_project / "models"
    features = load_features_file(models / "embeddings" / "extracted_features.npz", processed_dir=processed)
    whole = load_features_file(gallery_project / "models" / "embeddings" / "extracted_features.npz",
                               processed_dir=processed)
    assert str(features["crop"]) == "auto" and str(whole["crop"]) == "none"
    assert not np.allclose(features["embeddings"], whole["embeddings"])

    repository = Repository.load(models, processed)
    photo = str(features["image_paths"][0])
    prediction, results = repository.similar_to_image(photo, k=3)
    crop = prediction["crop"]
    pixels = np.asarray(Image.open(photo).convert("RGB"))
    assert (crop["width"], crop["height"]) == (pixels.shape[1], pixels.shape[0])
    # The demo's studio photo: the box found on the model's 32 pixels, in the photo's own, is its product's.
    assert localise.iou([crop["box"]], localise.contrast_boxes(pixels[None]))[0] > 0.7
    assert len(results) == 3 and repository.classify(image=photo)["crop"] == crop

    client = create_app(repository, image_dir=Path(photo).parent, thumbnails=Thumbnails(tmp_path / "thumbs"),
                        k=3).test_client()
    with open(photo, "rb") as file:
        answer = client.post("/api/classify", data={"image": (file, "photo.jpg")},
                             content_type="multipart/form-data").json
    assert answer["crop"] == crop and "crop" not in answer["prediction"] and len(answer["similar"]) == 3

    shown = subprocess.run([*SHOPLENS, "search", "--image", photo, "-k", "2", "--grid", tmp_path / "grid.png"],
                           cwd=crop_project, capture_output=True, text=True,
                           env={**os.environ, "SHOPLENS_PROJECT_DIR": str(crop_project)})
    assert shown.returncode == 0, shown.stderr
    assert f"cropped to the product found at x0,y0,x1,y1 = {','.join(map(str, crop['box']))}" in shown.stdout
    assert (tmp_path / "grid.png").is_file()


def test_whole_photos_give_no_crop(gallery_project):
    from shoplens.search.repository import Repository

    processed = gallery_project / "data" / "processed"
    repository = Repository.load(gallery_project / "models", processed, load_models=False)
    photo = str(repository.features["image_paths"][0])
    assert repository.similar_to_image(photo, k=2)[0]["crop"] is None
