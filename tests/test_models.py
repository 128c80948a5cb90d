import json

import keras
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from shoplens import ShoplensError
from shoplens.models.build_model import build_model
from shoplens.models.decode import decode_paths, level_probs_from_paths
from shoplens.models.inputs import encode_targets
from shoplens.models.predict_model import model_predict
from shoplens.models.train_model import train_model
from shoplens.models.trained import load_model

LEVELS = {"top": ["Apparel", "Footwear"], "type": ["Shoes", "Topwear"], "leaf": ["Sneakers", "Tshirts", "Tops"]}
PATHS = ["Apparel > Topwear > Tops", "Apparel > Topwear > Tshirts", "Footwear > Shoes > Sneakers"]


def dirs(project):
    data = project / "data" / "processed"
    return {"processed_dir": data, "features_dir": data / "features", "models_dir": project / "models"}


def train(project, classmode="multilabel", modelmode="combined", **options):
    options = {"backbone": "simple", "weights": "none", "epochs": 1, "verbose": 0, "logs_dir": project / "logs",
               **dirs(project), **options}
    return train_model(classmode, modelmode, **options)


@pytest.fixture(scope="session")
def trained_project(demo_project):
    """The demo project with a combined multilabel model trained for two epochs."""
    project, _ = demo_project
    train(project, epochs=2)
    return project


def test_joint_decoding_picks_the_best_path_of_the_tree():
    # Each head's own best ("Footwear", "Topwear", "Tshirts") is not a path of the tree.
    level_probs = [np.array([[0.45, 0.55]]), np.array([[0.4, 0.6]]), np.array([[0.3, 0.5, 0.2]])]
    index, joint = decode_paths(level_probs, PATHS, LEVELS)
    assert PATHS[index[0]] == "Apparel > Topwear > Tshirts"
    assert joint.shape == (1, 3) and joint.sum() == pytest.approx(1.0)
    expected = np.array([0.45 * 0.6 * 0.2, 0.45 * 0.6 * 0.5, 0.55 * 0.4 * 0.3])
    np.testing.assert_allclose(joint[0], expected / expected.sum())

    # A confident leaf outweighs a weak top level.
    level_probs = [np.array([[0.6, 0.4]]), np.array([[0.5, 0.5]]), np.array([[0.9, 0.05, 0.05]])]
    assert PATHS[decode_paths(level_probs, PATHS, LEVELS)[0][0]] == "Footwear > Shoes > Sneakers"


def test_path_probabilities_sum_into_levels():
    path_probs = np.array([[0.2, 0.3, 0.5]])
    top, kind, leaf = level_probs_from_paths(path_probs, PATHS, LEVELS)
    np.testing.assert_allclose(top, [[0.5, 0.5]])
    np.testing.assert_allclose(kind, [[0.5, 0.5]])
    np.testing.assert_allclose(leaf, [[0.5, 0.3, 0.2]])


@pytest.mark.parametrize("classmode", ["multilabel", "multiclass"])
@pytest.mark.parametrize("modelmode", ["combined", "image", "text"])
def test_every_mode_learns_well_beyond_the_most_frequent_class(demo_project, tmp_path, classmode, modelmode):
    project, summary = demo_project
    paths = {**dirs(project), "models_dir": tmp_path / "models"}
    meta = train_model(classmode, modelmode, backbone="simple", weights="none", epochs=8, batch_size=16, verbose=0,
                       logs_dir=tmp_path / "logs", **paths)
    assert meta["epochs_run"] >= 5 and meta["items_per_second"] > 0
    assert (tmp_path / "models" / f"{classmode}_{modelmode}" / "model.keras").is_file()
    assert list((tmp_path / "logs").glob(f"{classmode}_{modelmode}_*/train"))  # TensorBoard logs

    metrics = model_predict(classmode, modelmode, reports_dir=tmp_path / "reports", **paths)
    levels = summary["levels"]
    for key in ("accuracy", "most_frequent", "random_guess", "balanced_accuracy", "macro_f1", "top5", "ece"):
        assert list(metrics[key]) == levels and all(0 <= v <= 1 for v in metrics[key].values()), key
    for level in levels:
        # A constant answer scores the most-frequent baseline; a model must close a good part of the gap to 1.
        baseline = metrics["most_frequent"][level]
        assert metrics["accuracy"][level] >= baseline + (1 - baseline) / 4, (level, metrics["accuracy"], baseline)
        # Its balanced accuracy is 1/K: a model must double that, or close a quarter of the gap to 1 where
        # doubling asks for nearly every class right (few classes).
        chance = metrics["random_guess"][level]
        floor = min(2 * chance, chance + (1 - chance) / 4)
        assert metrics["balanced_accuracy"][level] >= floor, (level, metrics["balanced_accuracy"], floor)
    train = pd.read_parquet(project / "data/processed/splits/train.parquet")
    test = pd.read_parquet(project / "data/processed/splits/test.parquet")
    assert metrics["most_frequent"]["product_category"] == pytest.approx(
        (test["product_category"] == train["product_category"].mode()[0]).mean())
    assert metrics["random_guess"]["product_category"] == pytest.approx(1 / 3)
    assert ("accuracy_before_decoding" in metrics) == (classmode == "multilabel")
    assert metrics["unseen_title_items"] == (~test["clean_title"].isin(train["clean_title"])).sum() > 0

    reports = tmp_path / "reports" / "demo" / f"{classmode}_{modelmode}"
    predictions = pd.read_csv(reports / "predictions.csv", dtype=str)
    assert len(predictions) == summary["splits"]["test"] == metrics["items"]
    assert (predictions["predicted_product_details"] == test["product_details"]).mean() == \
        pytest.approx(metrics["accuracy"]["product_details"])
    valid = set(json.loads((project / "data/processed/features/labels.json").read_text())["paths"])
    assert set(predictions["predicted_category"]) <= valid
    for figure in ("confusion_product_category", "confusion_product_type", "confusion_product_details", "training",
                   "reliability"):
        assert (reports / f"{figure}.png").is_file()
    per_class = pd.read_csv(reports / "classification_report_product_details.csv")
    assert list(per_class.columns) == ["class", "precision", "recall", "f1-score", "support"]
    assert per_class["support"].sum() == len(test)


def test_labels_round_trip_whatever_their_order():
    """Encoded in training, decoded in prediction: with classes in any order, the names come back."""
    from shoplens.models.metrics import evaluate
    from shoplens.models.predict_model import Predictions, predictions_frame

    rng = np.random.default_rng(3)
    table = pd.DataFrame({"id": list("abcd"), "top": ["Footwear", "Apparel", "Apparel", "Apparel"],
                          "type": ["Shoes", "Topwear", "Topwear", "Topwear"],
                          "leaf": ["Sneakers", "Tshirts", "Tops", "Tops"]})
    table["category"] = table["top"] + " > " + table["type"] + " > " + table["leaf"]
    for _ in range(5):
        levels = {name: list(rng.permutation(classes)) for name, classes in LEVELS.items()}
        paths = list(rng.permutation(PATHS))
        labels = {"levels": levels, "paths": paths}
        truth = encode_targets(table, "multilabel", labels)
        level_probs = [np.eye(len(levels[name]))[truth[name]] for name in levels]
        index, _ = decode_paths(level_probs, paths, levels)
        predictions = Predictions(paths, index, level_probs, levels)
        frame = predictions_frame(predictions, table)
        assert frame["predicted_category"].tolist() == table["category"].tolist()
        assert frame["predicted_leaf"].tolist() == table["leaf"].tolist()
        metrics = evaluate(predictions, table, {"labels": labels})
        assert metrics["accuracy"] == {"top": 1.0, "type": 1.0, "leaf": 1.0}


def test_fused_posteriors_count_the_prior_once():
    from shoplens.models.decode import combine_posteriors

    prior = np.array([0.7, 0.2, 0.1])
    # Two models that know nothing answer the prior: together they still know nothing.
    np.testing.assert_allclose(combine_posteriors([prior, prior], prior), prior)
    # Each is sure of nothing but leans the same way against the prior: the evidence adds up.
    image, title = np.array([0.6, 0.3, 0.1]), np.array([0.6, 0.3, 0.1])
    fused = combine_posteriors([image, title], prior)
    expected = image * title / prior
    np.testing.assert_allclose(fused, expected / expected.sum())
    assert fused[1] > image[1]  # class 1 is twice as likely as the prior says, twice over
    np.testing.assert_allclose(combine_posteriors([image], prior), image)


def test_calibration_error_of_hand_made_confidences():
    from shoplens.models.metrics import calibration

    ece, bins = calibration(np.array([0.9, 0.9, 0.6, 0.5]), np.array([True, True, False, True]))
    assert ece == pytest.approx((0.5 + 0.6 + 2 * 0.1) / 4)
    assert bins == {"confidence": [0.5, 0.6, 0.9], "accuracy": [1.0, 0.0, 1.0], "items": [1, 1, 2]}


def test_a_reloaded_model_predicts_the_same(tmp_path):
    vocabulary = ["red", "shoe", "shirt"]
    model = build_model({"leaf": 3}, image_size=32, vocabulary=vocabulary, backbone="mobilenetv2", weights="none")
    model.compile("adam", {"leaf": "sparse_categorical_crossentropy"})
    inputs = {"image": np.random.default_rng(0).integers(0, 255, (8, 32, 32, 3), dtype=np.uint8),
              "title": np.array(["red shoe", "shirt", "red", "unknown words", "shoe", "", "red red", "shirt shoe"],
                              dtype=object)}
    model.fit(inputs, {"leaf": np.arange(8) % 3}, epochs=1, verbose=0)
    model.save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.predict(inputs, verbose=0)["leaf"], model.predict(inputs, verbose=0)["leaf"],
                               rtol=1e-5)


def test_saved_model_and_metadata_give_the_reported_metrics(trained_project, tmp_path):
    first = model_predict(reports_dir=tmp_path / "a", **dirs(trained_project))
    second = model_predict(reports_dir=tmp_path / "b", **dirs(trained_project))
    assert first["accuracy"] == second["accuracy"]
    model, meta = load_model(models_dir=trained_project / "models",
                             processed_dir=dirs(trained_project)["processed_dir"])
    assert meta["vocabulary"] and meta["image_size"] == 32 and meta["history"]["val_loss"]
    assert set(meta["labels"]["levels"]) == {"product_category", "product_type", "product_details"}


def test_predict_a_new_item_from_the_shell(trained_project):
    test = pd.read_parquet(trained_project / "data/processed/splits/test.parquet")
    item = test.iloc[0]
    result = run_cli("predict", "--image", item["image_path"], "--title", item["title"], "--json", cwd=trained_project)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["category"].count(" > ") == 2
    for classes in answer["levels"].values():
        assert len(classes) == 3 and classes[0][1] >= classes[1][1] >= classes[2][1]

    table = run_cli("predict", "--image", item["image_path"], "--title", item["title"], cwd=trained_project)
    assert table.stdout.startswith("category: ") and "product_details: " in table.stdout


def test_predict_a_whole_catalog_from_the_shell(trained_project, tmp_path):
    catalog = trained_project / "data" / "raw" / "demo"
    out = tmp_path / "predictions.csv"
    result = run_cli("predict", "--catalog", catalog, "--out", out, cwd=trained_project)
    assert result.returncode == 0, result.stderr
    predictions = pd.read_csv(out, dtype=str)
    rows = len(pd.read_csv(catalog / "catalog.csv"))
    skipped = [line for line in result.stdout.splitlines() if "skipped" in line]
    assert 0 < len(predictions) <= rows and skipped  # empty titles are skipped and counted
    assert result.stdout.splitlines()[2].split()[:3] == ["level", "accuracy", "most"]
    assert "full category path accuracy:" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--image", "nowhere.jpg", "--title", "red shirt"], "nowhere.jpg: cannot use this image (missing image)"),
    (["--title", "red shirt"], "reads images: give --image"),
    (["--modelmode", "text", "--title", "red shirt"], "no trained model; run `make model_train CLASSMODE=multilabel "
                                                      "MODELMODE=text` first"),
])
def test_predict_bad_input(trained_project, args, message):
    result = run_cli("predict", *args, cwd=trained_project)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_title_at_predict_time(trained_project):
    image = pd.read_parquet(trained_project / "data/processed/splits/test.parquet")["image_path"][0]
    result = run_cli("predict", "--image", image, "--title", "2 !!", cwd=trained_project)
    assert result.returncode != 0 and "has no words left after cleaning" in result.stderr


def test_corrupt_image_at_predict_time(trained_project, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    result = run_cli("predict", "--image", bad, "--title", "red shirt", cwd=trained_project)
    assert result.returncode != 0 and "cannot use this image (corrupt image)" in result.stderr


def test_modes_the_catalog_cannot_serve(tmp_path):
    from conftest import make_catalog

    from shoplens.data.make_dataset import make_dataset
    from shoplens.features.build_features import build_features

    processed = tmp_path / "data" / "processed"
    make_dataset(make_catalog(tmp_path / "cat", titles=False), min_items=5, interim_dir=tmp_path / "interim",
                 processed_dir=processed, progress=False)
    build_features(image_size=16, processed_dir=processed, progress=False)
    for modelmode in ("text", "combined"):
        with pytest.raises(ShoplensError, match=f"MODELMODE={modelmode} needs titles, but this catalog has none"):
            train(tmp_path, modelmode=modelmode)
    assert not (tmp_path / "models").exists()


def test_features_from_other_data_are_refused(trained_project, tmp_path):
    import shutil

    copy = tmp_path / "project"
    shutil.copytree(trained_project / "data", copy / "data")
    summary_path = copy / "data" / "processed" / "splits" / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["data_version"] = "0123456789ab"
    summary_path.write_text(json.dumps(summary))
    stage_path = summary_path.with_name("stage.json")
    stage_path.write_text(json.dumps({**json.loads(stage_path.read_text()), "version": "0123456789ab"}))
    with pytest.raises(ShoplensError, match="made from other data than the project's splits"):
        train(copy)
    with pytest.raises(ShoplensError, match="trained on other data"):
        model_predict(**{**dirs(copy), "models_dir": trained_project / "models"}, reports_dir=tmp_path / "r")


def test_augmentation_keeps_images_valid_and_varies_them():
    from shoplens.models.datasets import augment

    images = np.random.default_rng(0).integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    out = augment(images).numpy()
    assert out.shape == images.shape and out.dtype == np.uint8
    assert not np.array_equal(out, images)
    assert not np.array_equal(augment(images).numpy(), out)  # new draws each call


def test_an_input_of_several_arrays_shows_each_item_one_of_all_their_views():
    from shoplens.models.datasets import tf_dataset

    n = 400
    photos = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None], (n, 3)).copy()  # one view per item
    crops = np.stack([photos + 1000, photos + 2000])  # two views per item: crop, mirrored crop
    target = {"a": np.arange(n)}

    def seen(shuffle):
        rows = [(x["image_features"].numpy(), y["a"].numpy())
                for x, y in tf_dataset({"image_features": [photos, crops]}, target, 64, shuffle=shuffle)]
        values, items = np.concatenate([v for v, _ in rows]), np.concatenate([t for _, t in rows])
        assert (values % 1000 == items[:, None]).all()  # every row is a view of its own item
        return values[:, 0] // 1000

    views = seen(shuffle=True)
    assert set(np.unique(views)) == {0, 1, 2} and 0.25 < (views == 0).mean() < 0.42  # a third each
    assert (seen(shuffle=False) == 0).all()  # validation and prediction read the first


def test_precision_choice():
    from shoplens.models.train_model import compute_policy

    assert compute_policy("float32") == "float32"
    assert compute_policy("auto") in ("float32", "mixed_bfloat16", "mixed_float16")
    with pytest.raises(ShoplensError, match="unknown PRECISION 'half'"):
        compute_policy("half")


def test_learning_rate_choice():
    from shoplens.pipeline import resolve_learning_rate

    assert resolve_learning_rate("auto", "image") < resolve_learning_rate("auto", "combined")
    assert resolve_learning_rate("auto", "text") == resolve_learning_rate("auto", "combined")
    assert resolve_learning_rate("0.01", "image") == 0.01
    for bad in ("fast", "0", "-1e-3", "nan"):
        with pytest.raises(ShoplensError, match=f"LEARNING_RATE must be a positive number or auto, not '{bad}'"):
            resolve_learning_rate(bad, "text")


def test_learning_rate_falls_along_a_cosine_to_zero_at_the_last_epoch():
    from shoplens.models.train_model import cosine_schedule

    schedule = cosine_schedule(0.01, epochs=3, items=100, batch_size=32)  # 4 steps per epoch
    assert [float(schedule(step)) for step in (0, 6, 12)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-7)
