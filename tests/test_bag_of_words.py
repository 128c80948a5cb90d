"""The bag-of-words text model in NumPy gives the Keras model's outputs, and text search uses it."""
import numpy as np
import pandas as pd

from shoplens.models.bag_of_words import BagOfWords, title_reader
from shoplens.models.build_model import build_model
from shoplens.models.trained import load_named_model
from shoplens.search.repository import Repository


def test_numpy_reads_titles_as_the_keras_model_does(gallery_project):
    processed = gallery_project / "data" / "processed"
    model, _ = load_named_model("multilabel_text", gallery_project / "models", processed)
    titles = pd.read_parquet(processed / "splits" / "test.parquet")["clean_title"].tolist()
    titles += ["zzzz qqqq", "shoe " * 40]  # unknown words only; longer than the model reads
    keras_out = model.predict_on_batch({"title": np.array(titles, dtype=object)})
    numpy_out = BagOfWords.of(model)(titles)
    assert sorted(numpy_out) == sorted(keras_out)
    for name, probs in numpy_out.items():
        assert probs.shape == keras_out[name].shape
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        # Keras computed in bfloat16 under mixed precision, NumPy in float32.
        np.testing.assert_allclose(probs, keras_out[name], atol=0.01)
        assert (probs.argmax(axis=1) == np.asarray(keras_out[name]).argmax(axis=1)).mean() >= 0.98


def test_other_encoders_stay_with_keras():
    model = build_model({"level": 3}, vocabulary=["red", "shoe"], text_encoder="cnn")
    assert BagOfWords.of(model) is None
    out = title_reader(model)(["red shoe", "shoe"])
    assert out["level"].shape == (2, 3)


def test_text_search_reads_queries_without_keras(gallery_project):
    repository = Repository.load(gallery_project / "models", gallery_project / "data" / "processed")
    read_titles, _ = repository._text_runner()
    assert isinstance(read_titles, BagOfWords)
    reading, results = repository.search_text("shoes", k=3)
    assert reading["prediction"]["category"] in repository.categories() and results
