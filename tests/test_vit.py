"""BACKBONE=vit: keras_hub's Vision Transformer, trained from scratch on the features' images."""
import json
import shutil

import keras
import numpy as np
import pytest
import yaml
from conftest import run_cli
from PIL import Image

from shoplens import ShoplensError
from shoplens.features.build_features import load_images
from shoplens.models.build_model import IMAGE_EMBEDDING, build_model
from shoplens.models.extract_features import extract_features, load_features_file
from shoplens.pipeline import train_key
from shoplens.search.index import index_for
from shoplens.search.repository import Repository


def vit_model(**options):
    """A classifier on 32 px images with a small ViT (2 layers unless told), built in a few seconds."""
    return build_model({"leaf": 3}, image_size=32, backbone="vit", **{"weights": "none", "vit_layers": 2, **options})


@pytest.fixture(scope="module")
def vit_project(demo_project, tmp_path_factory):
    """A copy of the demo project (32 px images) with a ViT image model trained one epoch by `shoplens train`."""
    source, _ = demo_project
    project = tmp_path_factory.mktemp("vit_project")
    shutil.copytree(source / "data" / "processed", project / "data" / "processed")
    trained = run_cli("train", "--classmode", "multilabel", "--modelmode", "image", "--backbone", "vit", "--weights",
                      "none", "--vit-patch-size", "8", "--vit-layers", "2", "--epochs", "1", cwd=project)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    return project


def test_vit_trains_through_the_command_line_and_remembers_its_options(vit_project):
    meta = json.loads((vit_project / "models" / "multilabel_image" / "model.json").read_text())
    assert meta["image_size"] == 32  # the features' IMAGE_SIZE images, not a pretrained backbone's
    options = meta["options"]
    assert (options["backbone"], options["weights"], options["vit_patch_size"], options["vit_layers"]) == \
        ("vit", "none", 8, 2)
    assert options["finetune"] is False and meta["backbone_features_seconds"] is None  # trained on the images
    stored = yaml.safe_load((vit_project / "params.yaml").read_text())
    assert (stored["BACKBONE"], stored["VIT_PATCH_SIZE"], stored["VIT_LAYERS"]) == ("vit", 8, 2)
    # The options are remembered, so the next run is up to date without them.
    again = run_cli("train", "--classmode", "multilabel", "--modelmode", "image", cwd=vit_project)
    assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr


def test_vit_options_are_in_the_key_of_a_vit_only(vit_project):
    features_dir = vit_project / "data" / "processed" / "features"
    vit = train_key(modelmode="image", backbone="vit", weights="none", vit_layers=2, features_dir=features_dir)
    assert vit["options"]["VIT_LAYERS"] == 2 and vit["options"]["WEIGHTS"] == "none"
    assert "FINETUNE" not in vit["options"]
    assert train_key(modelmode="image", backbone="vit", weights="none", vit_layers=3,
                     features_dir=features_dir) != vit
    for backbone in ("simple", "mobilenetv2"):
        key = train_key(modelmode="image", backbone=backbone, features_dir=features_dir)
        assert not [name for name in key["options"] if name.startswith("VIT_")], backbone


def test_a_saved_vit_reloads_and_predicts_from_raw_images(vit_project):
    import shoplens.models.build_model  # noqa: F401

    model = keras.saving.load_model(vit_project / "models" / "multilabel_image" / "model.keras")
    assert model.get_layer("vit").__class__.__name__ == "ViTBackbone"
    images = load_images("test", vit_project / "data" / "processed" / "features", 32)[:8]
    assert images.dtype == np.uint8
    outputs = model.predict({"image": images}, verbose=0)
    for probabilities in outputs.values():
        assert probabilities.shape[0] == 8 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)


def test_vit_embeddings_serve_search(vit_project):
    processed, models = vit_project / "data" / "processed", vit_project / "models"
    extract_features(processed_dir=processed, features_dir=processed / "features", models_dir=models, progress=False)
    features = load_features_file(models / "embeddings" / "extracted_features.npz", processed_dir=processed)
    assert features["embeddings"].shape[1] == 256 and str(features["layer"]) == IMAGE_EMBEDDING
    index_for(features, models_dir=models)
    repository = Repository.load(models, processed, load_models=False)
    photo = vit_project / "photo.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(photo)
    prediction, results = repository.similar_to_image(str(photo), k=3)
    assert prediction["category"] in repository.categories() and len(results) == 3


def test_a_vit_weights_file_loads_into_a_vit_of_the_same_configuration(tmp_path):
    first = vit_model()
    path = tmp_path / "vit.weights.h5"
    first.get_layer("vit").save_weights(path)
    second = vit_model(weights=str(path))
    for a, b in zip(first.get_layer("vit").get_weights(), second.get_layer("vit").get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(vit_model().get_layer("vit").get_weights()[0], first.get_layer("vit").get_weights()[0])

    # Fewer layers (which Keras would load without a word), more layers, other patches.
    for other in ({"vit_layers": 1}, {"vit_layers": 3}, {"vit_patch_size": 4}):
        with pytest.raises(ShoplensError) as err:
            vit_model(weights=str(path), **other)
        message = str(err.value)
        assert message.startswith(f"{path}: cannot load as the weights of a ViT of") and "\n" not in message, message


def test_vit_weights_and_patches_it_cannot_take(tmp_path):
    with pytest.raises(ShoplensError, match="^BACKBONE=vit has no ImageNet weights") as err:
        vit_model(weights="imagenet")
    assert "\n" not in str(err.value)
    with pytest.raises(ShoplensError, match="weights file not found"):
        vit_model(weights=str(tmp_path / "missing.weights.h5"))
    with pytest.raises(ShoplensError, match=r"^VIT_PATCH_SIZE=5 does not divide the 32 px images"):
        vit_model(vit_patch_size=5)


def test_vit_with_imagenet_weights_is_one_line_on_the_command_line(vit_project):
    failed = run_cli("train", "--classmode", "multilabel", "--modelmode", "image", "--backbone", "vit", "--weights",
                     "imagenet", "--force", cwd=vit_project)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines()[-1].startswith("Error: BACKBONE=vit has no ImageNet weights"), \
        failed.stderr
