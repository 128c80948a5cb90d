"""Normalised-softmax training (LOSS=normsoftmax) and retrieval on categories no model saw (UNSEEN)."""
import keras
import numpy as np
import pandas as pd
import pytest

from shoplens import config
from shoplens.data.make_dataset import load_split, make_dataset
from shoplens.features.build_features import build_features, load_images
from shoplens.models.extract_features import extract_features, load_features_file
from shoplens.models.localise import ActivationMaps
from shoplens.models.normsoftmax import CosineSoftmax, MarginCrossentropy
from shoplens.models.predict_model import model_predict
from shoplens.models.train_model import train_model
from shoplens.models.trained import load_model
from shoplens.search.evaluate import search_metrics, unseen_metrics
from shoplens.search.index import ExactIndex


def test_cosine_head_is_a_softmax_over_cosines_and_the_margin_asks_more_of_the_true_class():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 8)).astype(np.float32)
    head = CosineSoftmax(4, temperature=0.1, dtype="float32")  # as the model's heads are, whatever the policy
    probs = np.asarray(head(x))
    w = np.asarray(head.kernel)
    cosines = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (w / np.linalg.norm(w, axis=0, keepdims=True))
    expected = np.exp(cosines / 0.1) / np.exp(cosines / 0.1).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, expected, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(head(10 * x)), probs, rtol=1e-4)  # the length of an embedding is ignored

    labels = np.array([0, 1, 2, 3, 0, 1])
    plain = float(keras.losses.SparseCategoricalCrossentropy()(labels, probs))
    assert float(MarginCrossentropy(0.0, 0.1)(labels, probs)) == pytest.approx(plain, rel=1e-5)
    # The margin lowers the true class's cosine: exactly the cross-entropy of the shifted cosines.
    shifted = cosines - 0.2 * np.eye(4)[labels]
    shifted = np.exp(shifted / 0.1) / np.exp(shifted / 0.1).sum(axis=1, keepdims=True)
    expected = -np.log(shifted[np.arange(6), labels]).mean()
    assert float(MarginCrossentropy(0.2, 0.1)(labels, probs)) == pytest.approx(expected, rel=1e-4)


def test_unseen_metrics_score_clustered_embeddings_perfectly_and_random_ones_near_chance():
    rng = np.random.default_rng(0)
    classes = np.repeat(np.arange(10), 20)
    centres = rng.normal(size=(10, 32))
    features = {"splits": np.array(["train"] * 50 + [config.UNSEEN_SPLIT] * 200),
                "labels": np.array([["a", "b", "c"]] * 50 + [["a", "b", f"leaf{c}"] for c in classes]),
                "levels": np.array(config.level_names())}
    clustered = np.vstack([rng.normal(size=(50, 32)), centres[classes] + 0.05 * rng.normal(size=(200, 32))])
    metrics = unseen_metrics(features, ExactIndex(clustered / np.linalg.norm(clustered, axis=1, keepdims=True)))
    assert metrics["queries"] == 200 and metrics["categories"] == 10
    assert metrics["recall@1"] == 1.0 and metrics["map@r"] == pytest.approx(1.0)
    assert metrics["random_recall@1"] == pytest.approx(19 / 199)

    noise = rng.normal(size=(250, 32))
    metrics = unseen_metrics(features, ExactIndex(noise / np.linalg.norm(noise, axis=1, keepdims=True)))
    assert metrics["recall@1"] < 0.25 and metrics["map@r"] < 0.2 and metrics["recall@10"] > metrics["recall@1"]


@pytest.fixture(scope="module")
def unseen_project(demo_project, tmp_path_factory):
    """The demo catalog split with UNSEEN, its features, and a normsoftmax image model trained on it."""
    source, _ = demo_project
    project = tmp_path_factory.mktemp("unseen_project")
    processed = project / "data" / "processed"
    summary = make_dataset(source / "data" / "raw" / "demo", min_items=5, unseen=True,
                           interim_dir=project / "data" / "interim", processed_dir=processed, progress=False)
    build_features(image_size=32, processed_dir=processed, progress=False)
    dirs = {"processed_dir": processed, "features_dir": processed / "features", "models_dir": project / "models"}
    meta = train_model("multilabel", "image", backbone="simple", weights="none", loss="normsoftmax", epochs=8,
                       batch_size=16, verbose=0, logs_dir=project / "logs", **dirs)
    return project, summary, meta, dirs


def test_unseen_categories_are_held_out_of_every_split_a_model_learns_from(unseen_project):
    _, summary, _, dirs = unseen_project
    leaf = config.level_names()[-1]
    held = set(summary["unseen_classes"])
    unseen = load_split(config.UNSEEN_SPLIT, dirs["processed_dir"])
    assert set(unseen[leaf]) == held and summary["splits"][config.UNSEEN_SPLIT] == len(unseen)
    for split in config.SPLITS:
        assert not held & set(load_split(split, dirs["processed_dir"])[leaf]), split
    everything = pd.concat([load_split(s, dirs["processed_dir"]) for s in summary["splits"]])
    share = len(held) / everything[leaf].nunique()
    assert 0.1 <= share <= 0.3, share


def test_normsoftmax_learns_and_search_reads_its_unit_length_embedding(unseen_project):
    _, summary, meta, dirs = unseen_project
    assert meta["options"]["loss"] == "normsoftmax" and meta["options"]["temperature"] == config.TEMPERATURE
    model, _ = load_model("multilabel", "image", models_dir=dirs["models_dir"], processed_dir=dirs["processed_dir"])
    assert all(isinstance(model.get_layer(name), CosineSoftmax) for name in summary["levels"])
    metrics = model_predict("multilabel", "image", reports_dir=dirs["models_dir"].parent / "reports", **dirs)
    leaf = summary["levels"][-1]
    assert metrics["accuracy"][leaf] >= metrics["most_frequent"][leaf] + 0.2, metrics["accuracy"]
    # CROP=auto reads a cosine classifier's logits for its activation maps as it reads a dense head's.
    maps = ActivationMaps(model)(load_images("test", dirs["features_dir"], 32)[:4])
    assert maps.shape == (4, 32, 32) and (maps >= 0).all() and (maps <= 1).all()
    # A map points somewhere: a flat one spans nothing (the geometric mean of its eight readings narrows the span).
    assert (np.ptp(maps, axis=(1, 2)) > 0.2).all(), np.ptp(maps, axis=(1, 2))

    extract_features(progress=False, **dirs)
    features = load_features_file(dirs["models_dir"] / "embeddings" / "extracted_features.npz",
                                  processed_dir=dirs["processed_dir"])
    embeddings = features["embeddings"]
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, rtol=1e-5)
    assert (embeddings < 0).any()  # a linear embedding: directions all round, not a positive orthant
    assert (features["splits"] == config.UNSEEN_SPLIT).sum() == summary["splits"][config.UNSEEN_SPLIT]

    index = ExactIndex(embeddings)
    seen, unseen = search_metrics(features, index), unseen_metrics(features, index)
    assert seen["precision@5"] > seen["random_precision"] + 0.2
    assert unseen["queries"] == summary["splits"][config.UNSEEN_SPLIT]
    assert unseen["random_recall@1"] < unseen["recall@1"] <= unseen["recall@5"] <= unseen["recall@10"] <= 1
    assert 0 < unseen["map@r"] <= 1
