"""The real gallery server (`shoplens serve`, waitress) on localhost, driven over HTTP and in headless Chromium."""
import base64
import http.client
import json
import os
import queue
import re
import subprocess
import threading
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from conftest import SHOPLENS

from shoplens import config

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def server(gallery_project):
    """`shoplens serve` on a free port of 127.0.0.1; its base URL once it listens."""
    yield from serve(gallery_project)


@pytest.fixture(scope="module")
def crop_server(crop_project):
    """The same, of a project whose embeddings are of crops (CROP=auto)."""
    yield from serve(crop_project)


def serve(project):
    """Start `shoplens serve` on a project, yield its base URL once it listens, stop it."""
    env = {**os.environ, "SHOPLENS_PROJECT_DIR": str(project), "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([*SHOPLENS, "serve", "--port", "0", "--threads", "4"], cwd=project, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    output = []
    try:
        while True:
            line = lines.get(timeout=180)
            output.append(line)
            found = re.search(r"http://127\.0\.0\.1:\d+", line)
            if found:
                break
    except queue.Empty:
        process.kill()
        pytest.fail("the server did not start listening:\n" + "".join(output))
    yield found.group(0)
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def catalog(gallery_project):
    processed = gallery_project / "data" / "processed"
    return pd.concat([pd.read_parquet(processed / "splits" / f"{s}.parquet") for s in ("train", "validate", "test")])


def request(base_url, method, path, body=None, headers=None):
    """One raw HTTP request, the path sent exactly as written; ``(status, headers, body)``."""
    address = urlsplit(base_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def assert_healthy(base_url):
    status, _, body = request(base_url, "GET", "/api/health")
    assert status == 200 and json.loads(body)["status"] == "ok"


def test_the_server_is_waitress_and_survives_bad_requests(server, catalog):
    status, headers, body = request(server, "GET", "/api/health")
    assert status == 200 and headers["Server"] == "waitress"  # not Flask's development server
    assert json.loads(body)["items"] == len(catalog)

    for path in ["/image/..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/thumb/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
                 "/image/%2Fetc%2Fpasswd", "/image//etc/passwd", "/image/../../../etc/passwd",
                 "/static/..%2F..%2F..%2F..%2Fetc%2Fpasswd", "/image/no-such-product"]:
        status, _, body = request(server, "GET", path)
        assert status == 404 and b"root:" not in body, path
        assert_healthy(server)

    boundary = "shoplensboundary"
    big = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.jpg\"\r\n"
           f"Content-Type: image/jpeg\r\n\r\n").encode() + bytes(11 * 2**20) + f"\r\n--{boundary}--\r\n".encode()
    status, _, body = request(server, "POST", "/api/classify", big,
                              {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 413 and "larger than 10 MB" in json.loads(body)["error"]
    assert_healthy(server)

    status, _, body = request(server, "GET", "/api/similar/nope?k=abc")
    assert status == 400 and "k: expected a whole number" in json.loads(body)["error"]
    assert_healthy(server)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def card_categories(page, selector="#results"):
    return page.locator(f"{selector} .card-category").all_inner_texts()


def wait_for_photo_answer(page, action):
    """Do ``action`` (a photo dropped or chosen, a switch flipped) and wait until the page shows the answer."""
    with page.expect_response(lambda r: r.url.endswith("/api/classify")) as response:
        action()
    assert response.value.status == 200
    page.wait_for_function("!document.getElementById('photo-status').textContent.startsWith('Looking')")
    page.wait_for_selector("#photo-result:not([hidden])")
    return page.inner_text("#predicted-path").rsplit(" (", 1)[0]


@needs_chromium
def test_browse_filter_page_search_and_classify_in_a_browser(server, browser, catalog):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server + "/")
    assert page.locator("#results .card").count() == config.PAGE_SIZE
    assert f"{len(catalog):,} products" in page.inner_text("#result-count")
    first = page.locator("#results .card img").first
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())

    # Two filters, each applied as soon as it is chosen; they combine.
    top = catalog["product_category"].value_counts().index[0]
    expected = catalog[(catalog["product_category"] == top) & (catalog["gender"] == "Women")]
    with page.expect_navigation():
        page.click("#filter-product_category summary")
        page.check(f"#filter-product_category input[value='{top}']")
    with page.expect_navigation():
        page.click("#filter-gender summary")
        page.check("#filter-gender input[value='Women']")
    query = parse_qs(urlsplit(page.url).query)
    assert query["product_category"] == [top] and query["gender"] == ["Women"]
    assert f"{len(expected):,} products" in page.inner_text("#result-count")
    first_page = card_categories(page)
    assert len(first_page) == min(config.PAGE_SIZE, len(expected))
    assert all(c.startswith(f"{top} > ") for c in first_page)

    # The next page keeps the filters and shows other products.
    ids_before = page.locator("#results .card a").evaluate_all("links => links.map(a => a.href)")
    with page.expect_navigation():
        page.click("a[rel=next]")
    assert "Page 2 of" in page.inner_text(".pager")
    assert page.is_checked("#filter-gender input[value='Women']")
    assert page.is_checked(f"#filter-product_category input[value='{top}']")
    assert not page.is_checked("#filter-gender input[value='Men']")
    ids_after = page.locator("#results .card a").evaluate_all("links => links.map(a => a.href)")
    assert ids_after and not set(ids_after) & set(ids_before)
    assert all(c.startswith(f"{top} > ") for c in card_categories(page))

    # A second value of the same field: either of them.
    either = catalog[(catalog["product_category"] == top) & catalog["gender"].isin(["Women", "Men"])]
    with page.expect_navigation():
        page.check("#filter-gender input[value='Men']")
    assert sorted(parse_qs(urlsplit(page.url).query)["gender"]) == ["Men", "Women"]
    assert f"{len(either):,} products" in page.inner_text("#result-count")

    # A text search, after clearing the filters.
    with page.expect_navigation():
        page.click("text=Clear all")
    item = catalog.iloc[7]
    page.fill("#q", item["title"])
    with page.expect_navigation():
        page.press("#q", "Enter")
    assert "Results for" in page.inner_text("#results-title")
    assert page.locator(f"#results a[href='/item/{item['id']}']").count() == 1

    # A photo from the file chooser: its predicted category and the most similar products.
    photo = item["image_path"]
    predicted = wait_for_photo_answer(page, lambda: page.set_input_files("#photo", photo))
    paths = set(catalog["category"])
    assert predicted in paths
    assert page.locator("#predicted-levels dt").all_inner_texts() == ["Product category", "Product type",
                                                                      "Product details"]
    assert page.locator("#similar .card").count() == config.GALLERY_K
    assert page.locator("#similar .card img").evaluate_all("imgs => imgs.every(i => i.alt)")
    assert page.is_hidden("#photo-crop")  # the whole photo was read: no box to show

    # Only in the predicted category.
    predicted = wait_for_photo_answer(page, lambda: page.check("#same-category"))
    similar = card_categories(page, "#similar")
    assert similar and all(c == predicted for c in similar)

    # A photo dropped on the drop zone.
    data = base64.b64encode(Path(catalog.iloc[11]["image_path"]).read_bytes()).decode()
    drop = """([data, name]) => {
        const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name, {type: "image/jpeg"}));
        document.getElementById("dropzone").dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }"""
    predicted = wait_for_photo_answer(page, lambda: page.evaluate(drop, [data, "dropped.jpg"]))
    assert predicted in paths and page.locator("#similar .card").count() >= 1

    # A similar product opens its own page, with its details and similar products.
    with page.expect_navigation():
        page.locator("#similar .card a").first.click()
    assert re.search(r"/item/[^/]+$", page.url)
    assert page.inner_text("h1")
    assert page.locator("#similar .card").count() == config.GALLERY_K
    assert not errors, errors
    page.close()


@needs_chromium
def test_the_page_fits_a_phone(server, browser):
    page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    page.goto(server + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    columns = page.evaluate("getComputedStyle(document.querySelector('#results')).gridTemplateColumns")
    assert len(columns.split()) == 2  # two products a row
    box = page.locator("#dropzone").bounding_box()
    assert box["width"] <= 390 and box["height"] > 40
    # The filters fold away so the products come first, and open with a tap.
    assert not page.locator("#filter-gender").is_visible()
    page.click("#filter-panel summary")
    assert page.locator("#filter-gender").is_visible()
    page.close()


@needs_chromium
def test_the_audit_page_shows_flagged_products_filtered_by_category(server, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(server + "/")
    with page.expect_navigation():
        page.click("text=Audit")
    assert "Catalog audit" in page.inner_text("h1")
    cards = page.locator("#label-issues .audit-card")
    assert cards.count() >= 1
    first = cards.locator("img").first
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=first.element_handle())
    assert "filed under" in cards.first.inner_text() and "looks like" in cards.first.inner_text()

    # A category, applied as soon as it is chosen: only products filed under it, or suggested for it, remain.
    category = page.locator("#audit-category option").nth(1).get_attribute("value")
    with page.expect_navigation():
        page.select_option("#audit-category", category)
    assert parse_qs(urlsplit(page.url).query)["category"] == [category]
    shown = json.loads(request(server, "GET", "/api/audit?" + urlsplit(page.url).query)[2])
    assert page.locator("#label-issues .audit-card").count() == len(shown["label_issues"]["items"])
    for item in shown["label_issues"]["items"]:
        assert item["category"].startswith(category) or item["suggested_path"].startswith(category)
    assert not errors, errors
    page.close()


@needs_chromium
def test_the_box_a_photo_was_cropped_to_is_drawn_over_it(crop_server, browser, catalog):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(crop_server + "/")
    with page.expect_response(lambda r: r.url.endswith("/api/classify")) as response:
        page.set_input_files("#photo", catalog.iloc[3]["image_path"])
    crop = response.value.json()["crop"]
    page.wait_for_selector("#photo-crop:not([hidden])")
    drawn = page.locator("#photo-crop").bounding_box()
    # The preview shows the whole (square) photo inside its 1-pixel border.
    preview = page.locator("#photo-preview").bounding_box()
    scale = (preview["width"] - 2) / crop["width"]
    x0, y0, x1, y1 = crop["box"]
    assert drawn["x"] == pytest.approx(preview["x"] + 1 + x0 * scale, abs=1)
    assert drawn["y"] == pytest.approx(preview["y"] + 1 + y0 * scale, abs=1)
    assert drawn["width"] == pytest.approx((x1 - x0) * scale, abs=1)
    assert drawn["height"] == pytest.approx((y1 - y0) * scale, abs=1)
    assert not errors
