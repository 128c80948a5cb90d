"""The bag-of-words text model in NumPy gives the Keras model's outputs, and text search uses it."""
import numpy as np
import pandas as pd

from shoplens.models.bag_of_words import BagOfWords, category_reader
from shoplens.models.build_model import build_model
from shoplens.models.decode import path_probs
from shoplens.models.trained import load_named_model
from shoplens.search.repository import Repository


def test_numpy_reads_titles_as_the_keras_model_and_path_decoding_do(gallery_project):
    processed = gallery_project / "data" / "processed"
    model, metadata = load_named_model("multilabel_text", gallery_project / "models", processed)
    titles = pd.read_parquet(processed / "splits" / "test.parquet")["clean_title"].tolist()
    titles += ["zzzz qqqq", "shoe " * 40]  # unknown words only; longer than the model reads
    keras_probs = path_probs(model.predict_on_batch({"title": np.array(titles, dtype=object)}), metadata)
    numpy_probs = BagOfWords.of(model, metadata)(titles)
    assert numpy_probs.shape == keras_probs.shape == (len(titles), len(metadata["labels"]["paths"]))
    np.testing.assert_allclose(numpy_probs.sum(axis=1), 1.0, rtol=1e-5)
    # Keras computed in bfloat16 under mixed precision, NumPy in float32.
    np.testing.assert_allclose(numpy_probs, keras_probs, atol=0.01)
    assert (numpy_probs.argmax(axis=1) == keras_probs.argmax(axis=1)).mean() >= 0.98


def test_other_encoders_stay_with_keras():
    levels = {"level": ["a", "b", "c"]}
    metadata = {"classmode": "multilabel", "labels": {"levels": levels, "paths": ["a", "b", "c"]}}
    model = build_model({"level": 3}, vocabulary=["red", "shoe"], text_encoder="cnn")
    assert BagOfWords.of(model, metadata) is None
    probs = category_reader(model, metadata)(["red shoe", "shoe"])
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_text_search_reads_queries_without_keras(gallery_project):
    repository = Repository.load(gallery_project / "models", gallery_project / "data" / "processed")
    read_categories, _ = repository._text_runner()
    assert isinstance(read_categories, BagOfWords)
    reading, results = repository.search_text("shoes", k=3)
    assert reading["prediction"]["category"] in repository.categories() and results
