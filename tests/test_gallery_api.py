"""The gallery's pages and JSON API through Flask's test client, on the demo project's real repository."""
import io
import json
import math

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from markupsafe import escape
from PIL import Image

from shoplens.gallery.app import create_app, inside, label
from shoplens.gallery.thumbnails import Thumbnails
from shoplens.search.repository import Repository


@pytest.fixture(scope="module")
def repository(gallery_project):
    processed = gallery_project / "data" / "processed"
    return Repository.load(models_dir=gallery_project / "models", processed_dir=processed)


@pytest.fixture(scope="module")
def catalog(gallery_project):
    """Every product of the demo project, as make_dataset wrote them."""
    processed = gallery_project / "data" / "processed"
    return pd.concat([pd.read_parquet(processed / "splits" / f"{s}.parquet") for s in ("train", "validate", "test")])


@pytest.fixture(scope="module")
def image_dir(gallery_project):
    return json.loads((gallery_project / "data" / "processed" / "splits" / "summary.json").read_text())["image_dir"]


@pytest.fixture(scope="module")
def thumbs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("thumbnails")


@pytest.fixture(scope="module")
def client(repository, image_dir, thumbs_dir, gallery_project):
    app = create_app(repository, image_dir=image_dir, thumbnails=Thumbnails(thumbs_dir), page_size=10, k=6,
                     reports_dir=gallery_project / "reports")
    return app.test_client()


def photo_bytes(catalog, row=0):
    return open(catalog.iloc[row]["image_path"], "rb").read()


def post_photo(client, data, **fields):
    form = {"image": (io.BytesIO(data), "photo.jpg"), **fields}
    return client.post("/api/classify", data=form, content_type="multipart/form-data")


def assert_still_serving(client):
    response = client.get("/api/items?page_size=1")
    assert response.status_code == 200 and len(response.json["items"]) == 1


def test_items_page_through_the_whole_catalog(client, catalog):
    first = client.get("/api/items?page=1&page_size=7").json
    assert first["total"] == len(catalog) and first["pages"] == math.ceil(len(catalog) / 7)
    seen = []
    for page in range(1, first["pages"] + 1):
        items = client.get(f"/api/items?page={page}&page_size=7").json["items"]
        assert len(items) == (7 if page < first["pages"] else len(catalog) - 7 * (first["pages"] - 1))
        seen += [item["id"] for item in items]
    assert sorted(seen) == sorted(catalog["id"])  # every product once, none twice
    assert client.get(f"/api/items?page={first['pages'] + 1}").json["items"] == []

    item = first["items"][0]
    assert set(item) == {"id", "title", "category", "levels", "attributes", "url", "thumbnail", "image"}
    assert list(item["levels"]) == ["product_category", "product_type", "product_details"]  # tree order kept
    assert " > ".join(item["levels"].values()) == item["category"]
    assert "image_path" not in str(item) and "/tmp" not in str(item)  # no server paths leak out


def test_filters_combine(client, catalog):
    top = catalog["product_category"].value_counts().index[0]
    expected = catalog[(catalog["product_category"] == top) & (catalog["gender"] == "Women")]
    answer = client.get(f"/api/items?product_category={top}&gender=Women&page_size=200").json
    assert 0 < answer["total"] == len(expected) < len(catalog)
    assert sorted(i["id"] for i in answer["items"]) == sorted(expected["id"])
    assert all(i["levels"]["product_category"] == top and i["attributes"]["gender"] == "Women"
               for i in answer["items"])
    by_path = client.get(f"/api/items?category={top}&gender=Women").json["total"]
    assert by_path == len(expected)
    either = client.get(f"/api/items?product_category={top}&gender=Women&gender=Men").json["total"]
    both = ((catalog["product_category"] == top) & catalog["gender"].isin(["Women", "Men"])).sum()
    assert either == both > by_path  # a field named twice: either value

    facets = client.get("/api/facets").json["facets"]
    assert {"product_category", "product_type", "product_details", "gender", "season", "colour"} <= set(facets)
    assert facets["gender"]["Women"] == (catalog["gender"] == "Women").sum()
    # Facet counts apply the other chosen filters: a field's own values stay choosable.
    page = client.get(f"/api/items?product_category={top}&gender=Women").json
    in_top = catalog["product_category"] == top
    assert page["facets"]["gender"]["Men"] == (in_top & (catalog["gender"] == "Men")).sum()
    assert page["facets"]["product_category"][top] == page["total"]
    assert page["facets"] == client.get(f"/api/facets?product_category={top}&gender=Women").json["facets"]


def test_text_search_finds_a_product_by_its_title(client, catalog):
    item = catalog.iloc[3]
    answer = client.get("/api/search", query_string={"q": item["title"], "k": 5}).json
    assert answer["k"] == 5 and 1 <= len(answer["results"]) <= 5
    assert item["id"] in [r["id"] for r in answer["results"]]
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["prediction"]["category"].count(" > ") == 2 and answer["reading"]["text"]
    assert all(0 < s <= 1 for s in scores) and all(r["why"] for r in answer["results"])
    nothing = client.get("/api/search", query_string={"q": "zzzzqqq"}).json
    assert nothing["results"] == [] and nothing["reading"]["unknown"] == ["zzzzqqq"]

    gender = "Men" if item["gender"] != "Men" else "Women"
    filtered = client.get("/api/search", query_string={"q": item["title"], "k": 5, "gender": gender}).json
    assert all(r["attributes"]["gender"] == gender for r in filtered["results"])


def test_similar_products(client):
    item_id = client.get("/api/items?page=2").json["items"][0]["id"]
    answer = client.get(f"/api/similar/{item_id}?k=8").json
    assert answer["id"] == item_id and len(answer["results"]) == 8
    assert item_id not in [r["id"] for r in answer["results"]]
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True) and all(-1.0001 <= s <= 1.0001 for s in scores)
    assert len(client.get(f"/api/similar/{item_id}").json["results"]) == 6  # the app's default k


def test_classify_a_photo_and_find_similar_products(client, catalog, repository):
    answer = post_photo(client, photo_bytes(catalog), k="5").json
    prediction = answer["prediction"]
    assert prediction["category"] in repository.categories()
    assert list(prediction["levels"]) == ["product_category", "product_type", "product_details"]
    for classes in prediction["levels"].values():
        probabilities = [c["probability"] for c in classes]
        assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1.0001
    assert len(answer["similar"]) == 5

    # The product's own photo: the product itself is never among the results.
    assert catalog.iloc[0]["id"] not in [r["id"] for r in answer["similar"]]
    assert all(0 <= r["score"] <= 1 for r in answer["similar"])

    same = post_photo(client, photo_bytes(catalog), k="5", same_category="1").json
    assert same["similar"] and all(r["category"] == same["prediction"]["category"] for r in same["similar"])

    with_title = post_photo(client, photo_bytes(catalog), title=catalog.iloc[0]["title"], same_category="1").json
    assert all(r["category"] == with_title["prediction"]["category"] for r in with_title["similar"])


def test_classify_a_title_alone(client, catalog):
    answer = client.post("/api/classify", data={"title": catalog.iloc[0]["title"]}).json
    assert answer["prediction"]["category"].count(" > ") == 2 and "similar" not in answer


def _big_upload():
    return b"\xff\xd8" + bytes(11 * 2**20)


def _many_pixels():
    """A PNG of 13,000 x 13,000 pixels in a few kilobytes: a gigabyte once decoded."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (13_000, 13_000)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize("request_, status, message", [
    (lambda c, cat: post_photo(c, _big_upload()), 413, "larger than 10 MB"),
    (lambda c, cat: post_photo(c, _many_pixels()), 413, "photo.jpg: 13,000 x 13,000 pixels, more than the limit of "
                                                        "40 megapixels (MAX_PIXELS)"),
    (lambda c, cat: post_photo(c, b"%PDF-1.4 not a photo at all"), 400, "photo.jpg: not an image"),
    (lambda c, cat: post_photo(c, photo_bytes(cat)[:600]), 400, "photo.jpg: not an image or a damaged one"),
    (lambda c, cat: post_photo(c, b""), 400, "the file is empty"),
    (lambda c, cat: c.post("/api/classify", data={}), 400, "give an image"),
    (lambda c, cat: post_photo(c, photo_bytes(cat), same_category="maybe"), 400, "same_category"),
    (lambda c, cat: c.get("/api/similar/no-such-product"), 404, "no product with id 'no-such-product'"),
    (lambda c, cat: c.get("/api/search?q=shirt&k=abc"), 400, "k: expected a whole number"),
    (lambda c, cat: c.get("/api/search?q=shirt&k=0"), 400, "k: must be from 1 to 100"),
    (lambda c, cat: c.get("/api/search?q=shirt&k=101"), 400, "k: must be from 1 to 100"),
    (lambda c, cat: c.get("/api/similar/100003?k=-5"), 400, "k: must be from 1"),
    (lambda c, cat: c.get("/api/search?q=%21%21%21"), 400, "no words left"),
    (lambda c, cat: c.get("/api/search?q="), 400, "q: give the words"),
    (lambda c, cat: c.get("/api/items?page=-1"), 400, "page: must be from 1 up, got -1"),
    (lambda c, cat: c.get("/api/items?page=two"), 400, "page: expected a whole number"),
    (lambda c, cat: c.get("/api/items?page_size=100000"), 400, "page_size: must be from 1 to 200"),
    (lambda c, cat: c.get("/api/items?gender=Robots"), 400, "unknown gender 'Robots'"),
    (lambda c, cat: c.get("/api/items?colr=Blue"), 400, "unknown parameter 'colr'"),
    (lambda c, cat: c.get("/api/items?category=Spaceships"), 400, "unknown category 'Spaceships'"),
    (lambda c, cat: c.get("/api/classify"), 405, ""),
    (lambda c, cat: c.get("/api/nothing-here"), 404, ""),
])
def test_bad_requests_get_a_json_error_and_the_server_keeps_serving(client, catalog, request_, status, message):
    response = request_(client, catalog)
    assert response.status_code == status
    assert response.is_json and message in response.json["error"], response.get_data(as_text=True)
    assert "Traceback" not in response.json["error"]
    assert_still_serving(client)


@pytest.mark.parametrize("url", [
    "/image/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/thumb/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
    "/image/%2Fetc%2Fpasswd",
    "/thumb/%2Fetc%2Fpasswd",
    "/image/../../etc/passwd",
    "/image/..",
    "/image/%2E%2E",
])
def test_path_traversal_in_an_image_url_is_not_found(client, url):
    response = client.get(url)
    assert response.status_code == 404
    assert b"root:" not in response.data
    assert_still_serving(client)


def test_images_outside_the_catalog_image_folder_are_never_served(repository, catalog, tmp_path):
    # The same products, but an app told the images live elsewhere: every real image is now outside it.
    elsewhere = tmp_path / "images"
    elsewhere.mkdir()
    client = create_app(repository, image_dir=elsewhere, thumbnails=Thumbnails(tmp_path / "thumbs")).test_client()
    item_id = catalog.iloc[0]["id"]
    assert client.get(f"/image/{item_id}").status_code == 404
    assert client.get(f"/thumb/{item_id}").status_code == 404
    assert not (tmp_path / "thumbs").exists()  # nothing was read to make a thumbnail


def test_inside_resolves_links_and_dots(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"x")
    (folder / "escape.jpg").symlink_to("/etc/passwd")
    assert inside(folder / "a.jpg", folder)
    assert not inside(folder / ".." / "images-not" / "a.jpg", folder)
    assert not inside(folder / "escape.jpg", folder)
    assert not inside("/etc/passwd", folder)


def test_images_and_thumbnails_are_served_with_caching_headers(client, catalog, thumbs_dir):
    item = catalog.iloc[5]
    image = client.get(f"/image/{item['id']}")
    assert image.status_code == 200 and image.data == open(item["image_path"], "rb").read()
    assert "max-age=86400" in image.headers["Cache-Control"]

    before = set(thumbs_dir.glob("*.jpg"))
    first = client.get(f"/thumb/{item['id']}")
    assert first.status_code == 200 and first.mimetype == "image/jpeg"
    assert "max-age=86400" in first.headers["Cache-Control"] and first.headers["ETag"]
    assert first.headers["Last-Modified"]
    with Image.open(io.BytesIO(first.data)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 256
    cached = set(thumbs_dir.glob("*.jpg")) - before
    assert len(cached) == 1
    made = next(iter(cached)).stat().st_mtime_ns

    again = client.get(f"/thumb/{item['id']}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and not again.data
    assert client.get(f"/thumb/{item['id']}").data == first.data
    assert set(thumbs_dir.glob("*.jpg")) - before == cached and next(iter(cached)).stat().st_mtime_ns == made
    assert not list(thumbs_dir.glob(".*"))  # no temporary files left


def test_thumbnail_of_a_large_image_is_small_and_remade_when_the_image_changes(tmp_path):
    source = tmp_path / "big.png"
    Image.fromarray(np.full((900, 600, 3), 200, np.uint8)).save(source)
    thumbnails = Thumbnails(tmp_path / "cache", size=128)
    path = thumbnails.get(source)
    with Image.open(path) as thumb:
        assert thumb.size == (85, 128)  # 600 wide, 900 high
    assert thumbnails.get(source) == path
    Image.fromarray(np.zeros((300, 300, 3), np.uint8)).save(source)
    changed = thumbnails.get(source)
    assert changed != path
    with Image.open(changed) as thumb:
        assert thumb.size == (128, 128)
    with pytest.raises(OSError):
        thumbnails.get(tmp_path / "missing.jpg")


def test_the_page_browses_filters_and_pages(client, catalog):
    page = client.get("/").get_data(as_text=True)
    assert '<meta name="viewport"' in page
    rendered = page.split("<template")[0]  # the card template the script fills in has empty slots
    assert rendered.count('class="card"') == 10
    assert f"{len(catalog):,} products" in page
    assert 'rel="next"' in page and 'rel="prev"' not in page
    for name in ("product_category", "product_type", "product_details", "gender", "season", "colour"):
        assert f'<details class="field" id="filter-{name}">\n      <summary>{label(name)}</summary>' in page
    assert rendered.count('<img src="/thumb/') == 10 and 'alt=""' not in rendered

    top = catalog["product_category"].value_counts().index[0]
    expected = catalog[(catalog["product_category"] == top) & (catalog["gender"] == "Men")]
    filtered = client.get("/", query_string={"product_category": top, "gender": "Men", "page": 2})
    text = filtered.get_data(as_text=True)
    assert f"{len(expected):,} products" in text and "Page 2 of" in text and 'rel="prev"' in text
    assert 'name="gender" value="Men" checked' in text and 'name="gender" value="Women" form' in text
    # The other values of a filtered field keep their counts under the other filters, to add them.
    women = ((catalog["product_category"] == top) & (catalog["gender"] == "Women")).sum()
    assert f'Women <span class="count">{women:,}</span>' in text

    searched = client.get("/", query_string={"q": catalog.iloc[0]["title"]}).get_data(as_text=True)
    assert "Results for" in searched and f'/item/{catalog.iloc[0]["id"]}"' in searched
    assert 'id="reading">Read as: ' in searched
    nothing = client.get("/", query_string={"q": "zzzzqqq"}).get_data(as_text=True)
    assert "Nothing matches “zzzzqqq”" in nothing and "no product has &#39;zzzzqqq&#39;" in nothing
    assert "best 0" not in nothing and 'class="card"' not in nothing.split("<template")[0]

    assert client.get("/?page=zero").status_code == 400
    assert client.get("/?utm_source=newsletter").status_code == 200  # the page ignores parameters it does not know


def test_the_product_page_shows_details_and_similar_products(client, catalog):
    item = catalog.iloc[2]
    page = client.get(f"/item/{item['id']}").get_data(as_text=True)
    assert str(escape(item["title"])) in page
    assert item["gender"] in page and item["product_details"] in page
    assert page.count('class="card"') == 6  # the app's k
    missing = client.get("/item/no-such-product")
    assert missing.status_code == 404 and "no product with id" in missing.get_data(as_text=True)


def test_the_audit_lists_flagged_products_and_duplicates_by_category(client, catalog, gallery_project):
    everything = client.get("/api/audit?limit=200").json
    flagged = pd.read_csv(next(gallery_project.glob("reports/*/audit/label_issues.csv")), dtype={"id": str})
    assert everything["label_issues"]["total"] == len(flagged) > 0
    first = everything["label_issues"]["items"][0]
    assert first["id"] == flagged.iloc[0]["id"] and first["thumbnail"] == f"/thumb/{first['id']}"
    assert first["given_probability"] < first["suggested_probability"]
    assert client.get(first["thumbnail"]).status_code == 200
    for group in everything["duplicates"]["groups"]:
        assert group["size"] == len(group["items"]) >= 2
        assert group["categories_disagree"] == (len({i["category"] for i in group["items"]}) > 1)

    category = first["category"].split(" > ")[0]
    some = client.get("/api/audit", query_string={"category": category, "limit": 3}).json
    assert 0 < len(some["label_issues"]["items"]) <= 3 and len(some["duplicates"]["groups"]) <= 3
    for item in some["label_issues"]["items"]:
        assert item["category"].startswith(category) or item["suggested_path"].startswith(category)
    for group in some["duplicates"]["groups"]:
        assert any(i["category"].startswith(category) for i in group["items"])

    page = client.get("/audit", query_string={"category": category, "limit": 3}).get_data(as_text=True)
    assert page.count('class="card audit-card"') == len(some["label_issues"]["items"])
    assert f'value="{escape(category)}" selected' in page
    assert client.get("/api/audit?color=red").status_code == 400


def test_a_catalog_not_audited_yet_says_what_to_run(repository, tmp_path):
    app = create_app(repository, thumbnails=Thumbnails(tmp_path / "thumbs"), reports_dir=tmp_path).test_client()
    missing = app.get("/api/audit")
    assert missing.status_code == 404 and "run `make audit`" in missing.json["error"]
    assert "run <code>make audit</code>" in app.get("/audit").get_data(as_text=True)


def test_label():
    assert label("product_category") == "Product category"
    assert label("baseColour") == "Base colour"


def test_serve_without_embeddings_says_what_to_run(tmp_path):
    result = run_cli("serve", "--port", "0", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "run `make model_extract_features`" in lines[0]
