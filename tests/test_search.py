"""Image repository search: extraction, indexes, the Repository, the shell commands and their bad input."""
import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from shoplens import ShoplensError
from shoplens.models.extract_features import (
    embedding_model,
    extract_features,
    fingerprint,
    load_features_file,
    load_named_model,
    merge_features,
    write_features,
)
from shoplens.search.evaluate import search_metrics
from shoplens.search.index import (
    ExactIndex,
    FaissIndex,
    Int8Index,
    VectorFile,
    build_index,
    choose_kind,
    load_index,
    save_index,
)
from shoplens.search.repository import NotFoundError, Repository


def dirs(project):
    processed = project / "data" / "processed"
    return {"processed_dir": processed, "features_dir": processed / "features", "models_dir": project / "models"}


def splits(project):
    return {name: pd.read_parquet(project / "data" / "processed" / "splits" / f"{name}.parquet")
            for name in ("train", "validate", "test")}


def unit(rng, n, dim):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def clustered(rng, n, dim, clusters):
    centres = unit(rng, clusters, dim)
    x = centres[rng.integers(0, clusters, n)] + rng.standard_normal((n, dim)).astype(np.float32) / np.sqrt(dim)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def repository(gallery_project):
    return Repository.load(gallery_project / "models", gallery_project / "data" / "processed")


# Extraction


def embeddings(project):
    return load_features_file(project / "models" / "embeddings" / "extracted_features.npz",
                              processed_dir=project / "data" / "processed")


def test_extracted_features_hold_every_item_with_its_labels(gallery_project):
    features = embeddings(gallery_project)
    tables = splits(gallery_project)
    table = pd.concat(tables.values(), keys=list(tables), names=["split"]).reset_index(level=0)
    summary = json.loads((gallery_project / "data" / "processed" / "splits" / "summary.json").read_text())

    assert features["ids"].tolist() == table["id"].tolist()
    assert features["splits"].tolist() == table["split"].tolist()
    assert features["embeddings"].dtype == np.float32 and features["embeddings"].shape == (len(table), 256)
    norms = np.linalg.norm(features["embeddings"], axis=1)
    assert np.allclose(norms, 1, atol=1e-5)
    assert features["levels"].tolist() == summary["levels"]
    assert [" > ".join(row) for row in features["labels"]] == table["category"].tolist()
    assert features["attributes"].tolist() == ["gender", "season", "colour"]
    assert features["attribute_values"][:, 0].tolist() == table["gender"].tolist()
    assert features["titles"].tolist() == table["title"].tolist()
    assert features["clean_titles"].tolist() == table["clean_title"].tolist()
    assert features["image_paths"].tolist() == table["image_path"].tolist()
    assert str(features["model"]) == "multilabel_image" and str(features["layer"]) == "image_embedding"
    assert str(features["data_version"]) == summary["data_version"]
    assert str(features["fingerprint"]) == fingerprint(features["ids"], features["embeddings"])

    # The rows are the image tower's output for each item's image, normalised.
    model, _ = load_named_model("multilabel_image", gallery_project / "models", gallery_project / "data" / "processed")
    images = np.load(gallery_project / "data" / "processed" / "features" / "images_32_test.npy")[:3]
    direct = np.asarray(embedding_model(model).predict_on_batch(images), dtype=np.float32)
    direct /= np.linalg.norm(direct, axis=1, keepdims=True)
    first_test = int(np.flatnonzero(features["splits"] == "test")[0])
    np.testing.assert_allclose(features["embeddings"][first_test:first_test + 3], direct, atol=1e-5)


def copy_project(project, tmp_path):
    """A copy of a project's data and models to change freely (the links of published stages kept as links)."""
    copy = tmp_path / "copy"
    for folder in ("data/processed", "models"):
        shutil.copytree(project / folder, copy / folder, symlinks=True)
    return copy


def test_shards_merge_into_the_whole_extraction(gallery_project, tmp_path):
    copy = copy_project(gallery_project, tmp_path)
    paths = dirs(copy)
    sizes = [extract_features(shard=shard, num_shards=3, batch_size=50, progress=False, **paths)["items"]
             for shard in range(3)]
    assert sizes == [195, 195, 195]
    merged = merge_features(3, models_dir=copy / "models", processed_dir=paths["processed_dir"])
    whole, parts = embeddings(gallery_project), embeddings(copy)
    assert merged["items"] == len(whole["ids"])
    assert parts["ids"].tolist() == whole["ids"].tolist()
    np.testing.assert_allclose(parts["embeddings"], whole["embeddings"], atol=1e-5)

    (copy / "models" / "embeddings-1-of-3").unlink()  # the link: the shard is no longer published
    with pytest.raises(ShoplensError, match=r"run `make model_extract_features SHARD=1 NUM_SHARDS=3`"):
        merge_features(3, models_dir=copy / "models", processed_dir=paths["processed_dir"])


def test_extraction_refuses_a_model_that_is_not_an_image_model(gallery_project, tmp_path):
    copy = copy_project(gallery_project, tmp_path)
    before = sorted(p.name for p in (copy / "models").iterdir())
    with pytest.raises(ShoplensError, match="is not an image model"):
        extract_features("multilabel_text", progress=False, **dirs(copy))
    with pytest.raises(ShoplensError, match="has no layer 'nowhere'"):
        extract_features(layer="nowhere", progress=False, **dirs(copy))
    with pytest.raises(ShoplensError, match=r"run `make model_train CLASSMODE=multiclass MODELMODE=image`"):
        extract_features("multiclass_image", progress=False, **dirs(copy))
    assert sorted(p.name for p in (copy / "models").iterdir()) == before


# Indexes


def test_exact_index_matches_a_full_sort():
    rng = np.random.default_rng(0)
    vectors, queries = unit(rng, 500, 16), unit(rng, 7, 16)
    truth = np.argsort(-(queries @ vectors.T), axis=1)
    scores, ids = ExactIndex(vectors).search(queries, 5, batch_size=3)
    np.testing.assert_array_equal(ids, truth[:, :5])
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, truth[:, :5], axis=1), rtol=1e-5)

    for share in (0.9, 0.1):  # scored and masked, or gathered first
        allowed = rng.random(500) < share
        _, ids = ExactIndex(vectors).search(queries, 5, allowed)
        expected = [[j for j in row if allowed[j]][:5] for row in truth]
        np.testing.assert_array_equal(ids, expected)

    allowed = np.zeros(500, dtype=bool)
    allowed[[3, 30, 300]] = True
    scores, ids = ExactIndex(vectors).search(queries[:1], 5, allowed)
    assert sorted(ids[0, :3]) == [3, 30, 300] and list(ids[0, 3:]) == [-1, -1] and np.isinf(scores[0, 3:]).all()


def test_faiss_index_finds_the_exact_neighbours_and_reloads(tmp_path):
    rng = np.random.default_rng(1)
    vectors, queries = np.split(clustered(rng, 6050, 32, 30), [6000])
    exact = ExactIndex(vectors).search(queries, 10)[1]
    index = FaissIndex.build(vectors, nprobe=8)
    assert index.index.nlist == 153  # 6000 // 39 training points per list
    found = index.search(queries, 10)[1]
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.9

    allowed = rng.random(6000) < 0.3
    _, ids = index.search(queries, 10, allowed)
    assert allowed[ids[ids >= 0]].all() and (ids >= 0).mean() > 0.9
    narrow = np.zeros(6000, dtype=bool)
    narrow[[5, 50, 500]] = True  # too few for the probed lists: answered exactly
    _, ids = index.search(queries[:2], 5, narrow)
    assert [sorted(row[:3]) for row in ids] == [[5, 50, 500]] * 2 and (ids[:, 3:] == -1).all()

    info = save_index(index, "abc", tmp_path / "search_index.json")
    assert info["kind"] == "faiss" and (tmp_path / "search_index.faiss").is_file()
    reloaded = load_index(vectors, "abc", tmp_path / "search_index.json")
    np.testing.assert_array_equal(reloaded.search(queries, 10)[1], found)
    with pytest.raises(ShoplensError, match=r"built from other embeddings than .*; run `make index`"):
        load_index(vectors, "other", tmp_path / "search_index.json")


def test_int8_index_finds_the_float32_neighbours_and_reloads(tmp_path):
    rng = np.random.default_rng(3)
    vectors, queries = np.split(clustered(rng, 3050, 64, 30).astype(np.float32), [3000])
    exact = ExactIndex(vectors).search(queries, 10)
    index = build_index(vectors, "exact", precision="int8")
    assert isinstance(index, Int8Index) and index.index.sa_code_size() == 64  # a byte per dimension
    scores, ids = index.search(queries, 10)
    recall = np.mean([len(set(f) & set(e)) / 10 for f, e in zip(ids, exact[1])])
    assert recall >= 0.99
    np.testing.assert_allclose(scores, exact[0], atol=1e-5)  # rescored in float32
    np.testing.assert_array_equal(index.vectors_of([0, 7]), vectors[[0, 7]])

    allowed = rng.random(3000) < 0.2
    _, ids = index.search(queries, 10, allowed)
    assert (ids >= 0).all() and allowed[ids].all()
    narrow = np.zeros(3000, dtype=bool)
    narrow[[5, 50]] = True
    scores, ids = index.search(queries[:1], 4, narrow)
    assert sorted(ids[0, :2]) == [5, 50] and list(ids[0, 2:]) == [-1, -1] and np.isinf(scores[0, 2:]).all()

    info = save_index(index, "abc", tmp_path / "search_index.json")
    assert (info["kind"], info["precision"]) == ("exact", "int8")
    assert {p.name for p in tmp_path.iterdir()} == {"search_index.json", "search_index.faiss",
                                                     "search_index.float32.npy"}
    reloaded = load_index(vectors, "abc", tmp_path / "search_index.json")
    assert isinstance(reloaded, Int8Index) and isinstance(reloaded.exact, VectorFile)  # float32 left on disk
    np.testing.assert_array_equal(reloaded.search(queries, 10)[1], index.search(queries, 10)[1])
    np.testing.assert_array_equal(reloaded.vectors_of([3, 2999]), vectors[[3, 2999]])
    with pytest.raises(ShoplensError, match="unknown INDEX_PRECISION 'float8'"):
        build_index(vectors, "exact", precision="float8")


def test_index_kind_by_size_or_by_choice():
    assert choose_kind(199_999) == "exact" and choose_kind(200_000) == "faiss"
    assert choose_kind(10, "faiss") == "faiss" and choose_kind(10**7, "exact") == "exact"
    assert choose_kind(100, "auto", threshold=50) == "faiss"
    assert build_index(unit(np.random.default_rng(2), 100, 8), "auto", threshold=1000).kind == "exact"
    with pytest.raises(ShoplensError, match="unknown INDEX 'annoy'"):
        choose_kind(10, "annoy")


# The Repository


def test_browse_filters_and_facets(repository):
    facets = repository.facets()
    assert list(facets) == ["product_category", "product_type", "product_details", "gender", "season", "colour"]
    assert sum(facets["gender"].values()) == len(repository) == 585

    total, items = repository.browse()
    assert total == 585 and len(items) == 20
    total, items = repository.browse({"gender": "Men"}, offset=0, limit=1000)
    assert total == facets["gender"]["Men"] == len(items) and all(i["attributes"]["gender"] == "Men" for i in items)
    total_two, _ = repository.browse({"gender": ["men", "Women"]})  # any of the values, in any case
    assert total_two == facets["gender"]["Men"] + facets["gender"]["Women"]

    total, items = repository.browse({"gender": "Women"}, category="Footwear", limit=1000)
    assert total == len(items) > 0
    assert all(i["category"].startswith("Footwear > ") and i["attributes"]["gender"] == "Women" for i in items)
    shoes = repository.browse(category="footwear > shoes")[0]
    assert shoes == facets["product_type"]["Shoes"]

    first = repository.browse(offset=0, limit=10)[1]
    second = repository.browse(offset=5, limit=10)[1]
    assert [i["id"] for i in first[5:]] == [i["id"] for i in second[:5]]
    item = repository.item(first[0]["id"])
    assert item == first[0] and set(item) == {"id", "title", "category", "levels", "attributes", "image_path", "split"}


@pytest.mark.parametrize("call, message", [
    (lambda r: r.browse({"size": "XL"}), "unknown filter field 'size' (choose from product_category,"),
    (lambda r: r.browse({"gender": "Robots"}), "unknown gender 'Robots' (choose from Boys, Girls, Men,"),
    (lambda r: r.browse(category="Garden > Tools"), "unknown category 'Garden > Tools'"),
    (lambda r: r.browse(offset=-1), "must not be negative"),
    (lambda r: r.search_text("shoes", k=0), "k must be at least 1, got 0"),
    (lambda r: r.search_text("shoes", k=586), "k=586 is larger than the catalog (585 products"),
    (lambda r: r.similar_to_item(r.ids[0], k=585), "k=585 is larger than the catalog (584 products"),
    (lambda r: r.search_text("the 2 !!"), "has no words left after cleaning"),
    (lambda r: r.classify(), "give an image and/or a title"),
])
def test_bad_queries_are_one_line_errors(repository, call, message):
    with pytest.raises(ShoplensError) as error:
        call(repository)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_unknown_product_is_not_found(repository):
    with pytest.raises(NotFoundError, match="no product with id 'nope'"):
        repository.item("nope")
    with pytest.raises(NotFoundError):
        repository.similar_to_item("nope")


def test_a_catalog_photo_never_finds_itself(repository):
    _, items = repository.browse({"gender": "Men"}, category="Apparel", limit=1)
    query = items[0]
    prediction, results = repository.similar_to_image(query["image_path"], k=5)
    assert prediction["category"] in repository.categories() and 0 < prediction["probability"] <= 1
    assert len(prediction["levels"]["product_details"]) == 3
    assert len(results) == 5 and query["id"] not in [r["id"] for r in results]
    row = repository.ids.tolist().index(query["id"])
    embeddings = repository.index.vectors_of(np.arange(len(repository)))
    similarity = embeddings @ embeddings[row]
    similarity[row] = -1
    assert results[0]["id"] == repository.ids[np.argmax(similarity)]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(0 <= r["score"] <= 1 for r in results)

    same = repository.similar_to_image(query["image_path"], k=5, same_category=True)[1]
    assert all(r["category"] == prediction["category"] for r in same)
    photo = Path(query["image_path"]).read_bytes()  # an upload
    women = repository.similar_to_image(photo, k=5, filters={"gender": "Women"})[1]
    assert len(women) == 5 and all(r["attributes"]["gender"] == "Women" for r in women)
    assert query["id"] not in [r["id"] for r in repository.similar_to_image(photo, k=5)[1]]


def test_similar_to_a_product_leaves_it_out(repository):
    item_id = repository.ids[10]
    results = repository.similar_to_item(item_id, k=4)
    assert len(results) == 4 and item_id not in [r["id"] for r in results]
    embeddings = repository.index.vectors_of(np.arange(len(repository)))
    best = np.argsort(-(embeddings @ embeddings[10]))[1]
    assert results[0]["id"] == repository.ids[best]


def test_an_int8_index_serves_the_repository(repository, gallery_project):
    processed = gallery_project / "data" / "processed"
    features = load_features_file(gallery_project / "models" / "embeddings" / "extracted_features.npz",
                                  processed_dir=processed)
    quarter = Repository(features, Int8Index.build(features["embeddings"]), gallery_project / "models",
                         processed_dir=processed)
    for item_id in quarter.ids[:20]:
        found = quarter.similar_to_item(item_id, k=5)
        assert len(found) == 5 and item_id not in [r["id"] for r in found]
        # One epoch leaves the demo's embeddings near-parallel, closer than int8 can tell apart: the order is
        # not float32's, but the scores are, each the float32 cosine of that product.
        rows = [repository.ids.tolist().index(r["id"]) for r in found]
        cosines = repository.index.vectors_of(rows) @ repository.index.vectors_of([repository._row[item_id]])[0]
        np.testing.assert_allclose([r["score"] for r in found], np.clip(cosines, 0, 1), atol=1e-4)
    metrics = search_metrics(quarter.features, quarter.index)
    assert metrics["queries"] == search_metrics(repository.features, repository.index)["queries"]


def unique_title(repository):
    """A product whose cleaned title no other product has."""
    clean = pd.Series(repository.features["clean_titles"])
    counts = clean.value_counts()
    return next(i for i, t in enumerate(clean) if counts[t] == 1 and len(t.split()) >= 5)


def test_text_search_finds_a_products_own_title(repository):
    row = unique_title(repository)
    reading, results = repository.search_text(repository.features["titles"][row], k=5)
    assert reading["prediction"] is not None and reading["prediction"]["model"] == "multilabel_text"
    assert repository.ids[row] in [r["id"] for r in results[:3]]
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert all(0 < r["score"] <= 1 and r["why"] for r in results)
    filtered = repository.search_text("shoes", k=5, filters={"gender": "Men"})[1]
    assert filtered and all(r["attributes"]["gender"] == "Men" for r in filtered)


def test_text_search_reads_attribute_words_and_has_no_results_for_unknown_words(repository):
    reading, results = repository.search_text("red shoes for men", k=10)
    assert reading["attributes"] == {"gender": ["Men"], "colour": ["Red"]}
    top = results[0]
    assert top["attributes"]["gender"] == "Men" and top["attributes"]["colour"] == "Red"
    assert "gender: Men" in top["why"] and "colour: Red" in top["why"]
    assert repository.search_text("zzzzqqq", k=10) == (
        {"words": [], "attributes": {}, "corrections": {}, "unknown": ["zzzzqqq"], "prediction": None,
         "text": "no product has 'zzzzqqq'"}, [])
    # A filter leaves fewer products than k: no padding with products that do not match.
    watches = repository.search_text("watch", k=50, filters={"gender": "Women"})[1]
    assert watches and all("watch" in " ".join(r["why"]).lower() for r in watches)


def test_text_search_without_a_text_model_uses_keywords_and_says_so_once(gallery_project, caplog):
    repository = Repository.load(gallery_project / "models", gallery_project / "data" / "processed",
                                 text_model="multilabel_missing", load_models=False)
    with caplog.at_level(logging.WARNING, logger="shoplens.search.repository"):
        reading, results = repository.search_text("running shoes", k=3)
        repository.search_text("black watch", k=3)
    assert reading["prediction"] is None and len(results) == 3
    assert all("running" in r["title"].lower() or "shoe" in r["title"].lower() for r in results)
    row = unique_title(repository)
    assert repository.search_text(repository.features["titles"][row], k=1)[1][0]["id"] == repository.ids[row]
    notes = [r for r in caplog.records if "titles and attributes alone" in r.getMessage()]
    assert len(notes) == 1 and "make model_train CLASSMODE=multilabel MODELMODE=missing" in notes[0].getMessage()


def test_classify_a_photo_a_title_or_both(repository):
    item = repository.browse(category="Footwear", limit=1)[1][0]
    by_image = repository.classify(image=item["image_path"])
    by_title = repository.classify(title=item["title"])
    both = repository.classify(image=item["image_path"], title=item["title"])
    for prediction in (by_image, by_title, both):
        assert prediction["category"] in repository.categories()
        assert len(prediction["levels"]["product_details"]) == 3
    assert by_image["model"] == "multilabel_image" and by_title["model"] == "multilabel_text"


@pytest.mark.parametrize("content, message", [
    (b"not a photo", "cannot read as an image"),
    (None, "no such image file"),
    ("truncated", "cannot read as an image"),
])
def test_unreadable_query_photos(repository, tmp_path, content, message):
    path = tmp_path / "query.jpg"
    if content == "truncated":
        path.write_bytes(open(repository.features["image_paths"][0], "rb").read()[:300])
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ShoplensError, match=message):
        repository.similar_to_image(path)


# From the shell


def test_search_commands_print_tables_and_grids(gallery_project, tmp_path):
    image = repository_image(gallery_project)
    result = run_cli("search", "--image", image, "-k", "3", "--grid", tmp_path / "image.png", cwd=gallery_project)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("predicted category: ") and lines[1].split() == ["#", "id", "score", "category",
                                                                                 "title"]
    assert [line.split()[0] for line in lines[2:5]] == ["1", "2", "3"]
    assert (tmp_path / "image.png").stat().st_size > 20_000

    result = run_cli("search", "--text", "red running shoes for men", "--filter", "gender=Men", "--json",
                     cwd=gallery_project)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["reading"]["prediction"]["category"] and 0 < len(answer["results"]) <= 5
    assert all(r["attributes"]["gender"] == "Men" for r in answer["results"])
    assert answer["reading"]["attributes"] == {"colour": ["Red"], "gender": ["Men"]}

    result = run_cli("search", "--text", "zzzzqqq", cwd=gallery_project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["no product has 'zzzzqqq'", "nothing matches 'zzzzqqq'"]

    result = run_cli("search", "--filter", "gender=Women,season=Summer", "--category", "Apparel", "--limit", "3",
                     "--grid", tmp_path / "browse.png", cwd=gallery_project)
    assert result.returncode == 0, result.stderr
    assert "products match; showing 1-3" in result.stdout and (tmp_path / "browse.png").is_file()


def repository_image(project):
    return pd.read_parquet(project / "data" / "processed" / "splits" / "test.parquet")["image_path"][0]


@pytest.mark.parametrize("args, message", [
    (["--text", "shoes", "-k", "0"], "0 is not in the range x>=1"),
    (["--text", "shoes", "-k", "100000"], "k=100000 is larger than the catalog (585 products"),
    (["--filter", "colour=Plaid"], "unknown colour 'Plaid' (choose from Beige, Black,"),
    (["--filter", "fabric=Silk"], "unknown filter field 'fabric'"),
    (["--filter", "gender"], "expected FIELD=VALUE like gender=Men, got 'gender'"),
    (["--image", "nowhere.jpg"], "nowhere.jpg: no such image file"),
    (["--item", "nope"], "no product with id 'nope'"),
])
def test_search_bad_input_from_the_shell(gallery_project, args, message):
    result = run_cli("search", *args, cwd=gallery_project)
    assert result.returncode != 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_corrupt_query_photo_from_the_shell(gallery_project, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a photo")
    result = run_cli("search", "--image", bad, cwd=gallery_project)
    assert result.returncode == 1 and f"Error: {bad}: cannot read as an image" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_embeddings_or_index_name_the_make_target(gallery_project, tmp_path):
    result = run_cli("search", "--text", "shoes", cwd=tmp_path)
    assert result.returncode == 1 and "extracted_features.npz: not found; run `make model_extract_features`" in \
        result.stderr

    project = copy_project(gallery_project, tmp_path)
    (project / "models" / "search_index").unlink()
    result = run_cli("search", "--filter", "gender=Men", cwd=project)
    assert result.returncode == 1 and "search_index.json: not found; run `make index`" in result.stderr


def test_an_index_of_other_embeddings_is_refused(gallery_project, tmp_path):
    project = copy_project(gallery_project, tmp_path)
    folder = project / "models" / "embeddings"
    features = embeddings(project)
    features["embeddings"] = features["embeddings"][::-1].copy()  # extracted again, differently
    write_features({k: v for k, v in features.items() if k != "fingerprint"}, folder,
                   json.loads((folder / "stage.json").read_text())["key"])
    result = run_cli("search", "--filter", "gender=Men", cwd=project)
    assert result.returncode == 1
    assert "search_index.json: built from other embeddings than" in result.stderr and "run `make index`" in \
        result.stderr

    rebuilt = run_cli("build-index", cwd=project)
    assert rebuilt.returncode == 0 and "built an exact index of 585 items" in rebuilt.stdout
    assert run_cli("search", "--filter", "gender=Men", cwd=project).returncode == 0


def test_evaluate_search_writes_precision_at_k(gallery_project, tmp_path):
    project = copy_project(gallery_project, tmp_path)
    result = run_cli("evaluate-search", cwd=project)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((project / "reports" / "demo" / "search" / "metrics.json").read_text())
    test_items = len(splits(project)["test"])
    assert metrics["queries"] == test_items and metrics["relevant"] == "same product_details"
    for key in ("precision@1", "precision@5", "precision@10", "map@10", "random_precision"):
        assert 0 <= metrics[key] <= 1
    # Even a one-epoch image tower ranks same-category products well above chance.
    assert metrics["precision@5"] > 1.5 * metrics["random_precision"]
    assert "precision@5 " in result.stdout and "random ranking: precision" in result.stdout
    again = run_cli("evaluate-search", cwd=project)
    assert again.stdout.splitlines()[0] == "search evaluation: up to date (reports/demo/search)"
    assert again.stdout.splitlines()[2] == result.stdout.splitlines()[2]


def test_output_files_in_folders_that_are_not_there(gallery_project, tmp_path):
    (tmp_path / "a-file").write_text("")
    for grid, message in [(tmp_path / "a-file" / "grid.png", "is a file"),
                          (tmp_path / "missing" / "grid.png", "does not exist"),
                          (tmp_path, "is a folder; name a file")]:
        result = run_cli("search", "--text", "shoes", "--grid", grid, cwd=gallery_project)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()


def test_damaged_embeddings_and_models_name_the_target_that_remakes_them(gallery_project, tmp_path):
    project = copy_project(gallery_project, tmp_path)
    npz = project / "models" / "embeddings" / "extracted_features.npz"
    npz.write_bytes(npz.read_bytes()[:5000])  # a write cut short
    result = run_cli("search", "--text", "shoes", cwd=project)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "extracted_features.npz: cannot read" in result.stderr and "run `make model_extract_features` again" in \
        result.stderr

    keras_file = project / "models" / "multilabel_image" / "model.keras"
    keras_file.write_bytes(keras_file.read_bytes()[:20_000])
    image = repository_image(project)
    result = run_cli("predict", "--modelmode", "image", "--image", image, cwd=project)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "model.keras: cannot load" in result.stderr and \
        "run `make model_train CLASSMODE=multilabel MODELMODE=image` again" in result.stderr

    # The photo is checked before the model is loaded: a missing photo is said, not the damaged model.
    result = run_cli("predict", "--modelmode", "image", "--image", tmp_path / "nowhere.jpg", cwd=project)
    assert result.returncode == 1 and "nowhere.jpg: cannot use this image (missing image)" in result.stderr


def test_query_photos_of_too_many_pixels_are_refused(gallery_project, tmp_path):
    from PIL import Image

    Image.new("1", (13_000, 13_000)).save(tmp_path / "huge.png")
    for args in (["search", "--image", tmp_path / "huge.png"],
                 ["predict", "--modelmode", "image", "--image", tmp_path / "huge.png"]):
        result = run_cli(*args, cwd=gallery_project)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "13,000 x 13,000 pixels, more than the limit of 40 megapixels (MAX_PIXELS)" in result.stderr
