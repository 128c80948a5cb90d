"""Pretrained backbones: weights from a file, activations cached once, fine-tuning with batch norm frozen."""
import json
import shutil

import keras
import numpy as np
import pytest
from conftest import REPO, run_cli

from shoplens import ShoplensError
from shoplens.audit.audit import audit
from shoplens.data.demo_catalog import generate_demo_catalog
from shoplens.data.images import load_image
from shoplens.data.make_dataset import make_dataset
from shoplens.features.build_features import build_features
from shoplens.models.build_model import build_model
from shoplens.models.train_model import train_model
from shoplens.models.trained import load_model

SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "mobilenet_v2_1.0_224_imagenet_notop.weights.h5"
SIZE = 32  # MobileNetV2's smallest input: a tiny run


def random_weights(path, seed):
    """A MobileNetV2 weights file of random weights: what the tests load instead of ImageNet's.

    Batch norm's statistics are measured on random images, as training would have set them: with the
    initial ones, activations blow up into ReLU6's flat top and no gradient reaches the top blocks.
    """
    keras.utils.set_random_seed(seed)
    network = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0  # the statistics of this one batch
    network(np.random.default_rng(seed).uniform(-1, 1, (64, SIZE, SIZE, 3)).astype("float32"), training=True)
    network.save_weights(path)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A tiny demo project with features for a pretrained backbone, and a weights file of random weights."""
    project = tmp_path_factory.mktemp("pretrained")
    catalog = project / "data" / "raw" / "demo"
    generate_demo_catalog(catalog, n=300, seed=3, progress=False)
    processed = project / "data" / "processed"
    make_dataset(catalog, min_items=5, interim_dir=project / "data" / "interim", processed_dir=processed,
                 progress=False)
    build_features(image_size=SIZE, pretrained_image_size=SIZE, processed_dir=processed, progress=False)
    return project, random_weights(project / "random.weights.h5", seed=0)


def dirs(project):
    processed = project / "data" / "processed"
    return {"processed_dir": processed, "features_dir": processed / "features", "models_dir": project / "models"}


def train(project, weights, modelmode="image", **options):
    return train_model("multilabel", modelmode, backbone="mobilenetv2", weights=str(weights), epochs=2,
                       finetune_epochs=2, batch_size=32, verbose=0, logs_dir=project / "logs", **dirs(project),
                       **options)


def test_fine_tuning_trains_the_top_blocks_and_keeps_batch_norm_as_it_was(project):
    folder, weights = project
    meta = train(folder, weights, finetune=True, finetune_blocks=2)
    assert meta["stage_epochs"] == [2, 2] and meta["options"]["finetune_blocks"] == 2
    assert meta["weights_file"]["name"] == "random.weights.h5" and len(meta["weights_file"]["sha256"]) == 64

    model, _ = load_model("multilabel", "image", **{k: v for k, v in dirs(folder).items() if k != "features_dir"})
    reference = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3))
    reference.load_weights(weights)
    batch_norm = [layer for layer in reference.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(batch_norm) == 52
    for layer in batch_norm:  # statistics, scale and shift: all as loaded, in every block, fine-tuned or not
        for before, after in zip(layer.get_weights(), model.get_layer(layer.name).get_weights()):
            np.testing.assert_array_equal(before, after, err_msg=layer.name)

    def changed(name):
        return not np.array_equal(reference.get_layer(name).get_weights()[0], model.get_layer(name).get_weights()[0])

    assert changed("block_16_project") and changed("block_15_expand") and changed("Conv_1")  # the top two blocks
    assert not changed("block_14_project") and not changed("Conv1")  # the rest stays as loaded


def test_the_activations_are_cached_once_and_made_again_when_weights_or_size_change(project, tmp_path):
    folder, weights = project
    copy = tmp_path / "copy"
    shutil.copytree(folder / "data", copy / "data", symlinks=True)
    run = ["train", "--modelmode", "image", "--backbone", "mobilenetv2", "--epochs", "1", "--batch-size", "32"]
    first = run_cli(*run, "--weights", weights, cwd=copy)
    assert first.returncode == 0, first.stderr
    assert f"backbone features mobilenetv2-{SIZE}px-image_features: running (not made yet)" in first.stdout
    again = run_cli(*run, "--weights", weights, "--force", cwd=copy)
    assert f"backbone features mobilenetv2-{SIZE}px-image_features: up to date" in again.stdout

    other = random_weights(tmp_path / "other.weights.h5", seed=1)
    changed = run_cli(*run, "--weights", other, cwd=copy)
    assert "backbone features mobilenetv2-32px-image_features: running (WEIGHTS" in changed.stdout

    bigger = run_cli("build-features", "--image-size", SIZE, "--pretrained-image-size", 48, cwd=copy)
    assert bigger.returncode == 0 and "images 32x32, 48x48" in bigger.stdout, bigger.stdout + bigger.stderr
    resized = run_cli(*run, "--weights", other, cwd=copy)
    assert "backbone features mobilenetv2-48px-image_features: running (not made yet)" in resized.stdout
    assert json.loads((copy / "models" / "multilabel_image" / "model.json").read_text())["image_size"] == 48
    assert (copy / "data" / "processed" / "features" / f"images_{SIZE}_train.npy").is_file()  # kept, not remade

    # The frozen backbone's features of every product, test ones included, are evidence for the audit.
    summary = audit(processed_dir=copy / "data" / "processed", reports_dir=copy / "reports")
    assert summary["evidence"] == ["title", "image"] and summary["image_features"].endswith("-image_features")


def test_a_combined_model_reads_the_pretrained_tower_and_the_title(project, tmp_path):
    folder, weights = project
    paths = {**dirs(folder), "models_dir": tmp_path / "models"}
    meta = train_model("multilabel", "combined", backbone="mobilenetv2", weights=str(weights), finetune=True,
                       finetune_blocks=1, epochs=3, finetune_epochs=1, batch_size=32, verbose=0,
                       logs_dir=tmp_path / "logs", **paths)
    assert meta["stage_epochs"] == [3, 1] and meta["vocabulary"]
    model, metadata = load_model("multilabel", "combined", tmp_path / "models", paths["processed_dir"])
    assert set(model.input) == {"image", "title"} and metadata["image_size"] == SIZE
    assert model.get_layer("image_embedding").output.shape[-1] == 256


def test_crop_auto_repeats_the_last_stage_on_the_cached_activations_of_the_crops(project, tmp_path):
    folder, weights = project
    meta = train_model("multilabel", "image", backbone="mobilenetv2", weights=str(weights), finetune=True,
                       finetune_blocks=1, epochs=2, finetune_epochs=1, crop="auto", batch_size=32, verbose=0,
                       logs_dir=tmp_path / "logs", **{**dirs(folder), "models_dir": tmp_path / "models"})
    assert meta["stages"] == ["heads", "fine-tuning", "crops"] and meta["stage_epochs"] == [2, 1, 1]
    # The crops' activations at the cut below the fine-tuned block, beside the photos', as many views.
    backbone = folder / "data" / "processed" / "backbone"
    cached = next(backbone.glob("*-crops"))
    assert not cached.name.endswith("image_features-crops")
    photos = np.load(backbone / cached.name.removesuffix("-crops") / "train.npy", mmap_mode="r")
    crops = np.load(cached / "train.npy", mmap_mode="r")
    assert crops.shape == photos.shape and not np.allclose(crops, photos)
    validate = np.load(cached / "validate.npy", mmap_mode="r")
    assert meta["products_found"]["photos"] == photos.shape[1] + len(validate)


def test_pretrained_options_that_cannot_work(project):
    folder, weights = project
    with pytest.raises(ShoplensError, match="FINETUNE_BLOCKS must be from 1 to 15 for mobilenetv2, got 40"):
        train(folder, weights, finetune=True, finetune_blocks=40)
    with pytest.raises(ShoplensError, match="BACKBONE=mobilenetv2 cannot read 16 px images"):
        build_model({"leaf": 3}, image_size=16, backbone="mobilenetv2", weights=str(weights))


def test_weights_that_cannot_be_loaded(project, tmp_path, monkeypatch):
    folder, _ = project

    def train(folder, weights):
        return train_model("multilabel", "image", backbone="mobilenetv2", weights=weights, epochs=1, verbose=0,
                           **{**dirs(folder), "models_dir": tmp_path})

    with pytest.raises(ShoplensError, match="weights file not found"):
        train(folder, str(tmp_path / "none.h5"))
    bad = tmp_path / "bad.weights.h5"
    bad.write_text("not weights")
    with pytest.raises(ShoplensError, match="cannot load as mobilenetv2 weights"):
        train(folder, str(bad))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    expected = "offline, give a copy of mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
    with pytest.raises(ShoplensError, match=f"{expected} .* as WEIGHTS=<file>"):
        train(folder, "imagenet")
    assert not list(tmp_path.glob("multilabel_image"))


@pytest.mark.skipif(not SHARED_WEIGHTS.is_file(), reason="../shared/weights (real ImageNet weights) not present")
def test_real_imagenet_weights_tell_product_types_apart_better_than_random_ones(tmp_path):
    catalog = tmp_path / "demo"
    generate_demo_catalog(catalog, n=200, seed=5, progress=False)
    import pandas as pd

    table = pd.read_csv(catalog / "catalog.csv", dtype=str)
    leaves = table["category"].str.split(" > ").str[-1]
    kinds = leaves.value_counts().index[:4]  # four product types with many items
    items = pd.concat([table[leaves == kind].head(6) for kind in kinds])
    labels = items["category"].to_numpy()
    images = np.stack([load_image(catalog / "images" / name, 96) for name in items["image"]])

    def separation(weights):
        model = build_model({"leaf": 2}, image_size=96, backbone="mobilenetv2", weights=str(weights))
        features = keras.Model(model.get_layer("image").output, model.get_layer("image_features").output)
        vectors = features.predict(images, verbose=0)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        similarity = vectors @ vectors.T
        same = labels[:, None] == labels[None, :]
        off_diagonal = ~np.eye(len(labels), dtype=bool)
        return similarity[same & off_diagonal].mean() - similarity[~same].mean()

    real = separation(SHARED_WEIGHTS)
    assert real > 0.1 and real > 2 * separation(random_weights(tmp_path / "random.weights.h5", seed=2))
