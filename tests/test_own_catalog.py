"""The README's own-catalog recipe, run with real `make` on a catalog that is not the demo, no option repeated."""
import json
import re
import socket
import subprocess
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, SHOPLENS, clean_env, make, scratch_project, word, write_image

pytestmark = pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(),
                                reason="needs the project's .venv (make test)")

# A shop of garden and kitchen things: no class of the demo catalog, other column names, "/" between levels.
SHOP = {"Garden/Tools/Spades": (40, 160, 40), "Garden/Tools/Rakes": (200, 180, 40),
        "Kitchen/Cookware/Pans": (60, 60, 200)}
DATA = ["CATALOG=shop/products.csv", "ID_COL=sku", "TITLE_COL=name", "IMAGE_COL=picture", "CATEGORY_COL=path",
        "CATEGORY_SEP=/", "IMAGE_DIR=shop/photos", "MIN_ITEMS=5"]


def write_shop(folder, per_class=16, prefix="g"):
    (folder / "photos").mkdir(parents=True)
    rows = []
    for c, (path, colour) in enumerate(SHOP.items()):
        for i in range(per_class):
            sku = f"{prefix}{c}{i:02d}"
            write_image(folder / "photos" / f"{sku}.png", colour)
            rows.append({"sku": sku, "name": f"Acme {path.split('/')[-1][:-1]} model {word(i)} steel",
                         "picture": f"{sku}.png", "path": path, "colour": ["Green", "Red"][i % 2]})
    pd.DataFrame(rows).to_csv(folder / "products.csv", index=False)


def lines(result):
    return result.stdout.splitlines()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def shop_project(tmp_path_factory):
    """A scratch project taken through the README's recipe on the shop catalog; each step's output kept."""
    project = scratch_project(tmp_path_factory.mktemp("own_catalog") / "project")
    write_shop(project / "shop")
    steps = {
        "data": make(project, "data", *DATA),
        "features": make(project, "features", "IMAGE_SIZE=16"),
        "model_train": make(project, "model_train", "BACKBONE=simple", "WEIGHTS=none", "EPOCHS=1"),
        "model_predict": make(project, "model_predict"),
        "model_extract_features": make(project, "model_extract_features"),
    }
    return project, steps


def test_every_step_works_on_the_users_catalog(shop_project):
    project, steps = shop_project
    assert "read 48 rows from shop/products.csv" in steps["data"].stdout
    assert "classes per level: product_category 2, product_type 2, product_details 3" in steps["data"].stdout
    assert "data: up to date" in steps["features"].stdout and "images 16x16" in steps["features"].stdout
    for later in ("model_train", "model_predict", "model_extract_features"):
        assert "data: up to date" in steps[later].stdout and "features: up to date" in steps[later].stdout
    assert "model multilabel_combined: running (not made yet)" in steps["model_train"].stdout
    assert "model multilabel_combined: up to date" in steps["model_predict"].stdout
    assert "on the test split of products" in steps["model_predict"].stdout
    assert "model multilabel_image: running" in steps["model_extract_features"].stdout
    assert "embedded 48 items with multilabel_image" in steps["model_extract_features"].stdout
    assert not (project / "data" / "raw" / "demo").exists()  # the demo catalog was never made

    stored = (project / "params.yaml").read_text()
    for option in [*DATA, "IMAGE_SIZE=16", "BACKBONE=simple", "EPOCHS=1"]:
        name, value = option.split("=")
        assert re.search(rf"^{name}: '?{re.escape(value)}'?$", stored, re.M), (option, stored)
    model = json.loads((project / "models" / "multilabel_combined" / "model.json").read_text())
    assert model["labels"]["levels"]["product_details"] == ["Pans", "Rakes", "Spades"]
    assert model["data"]["catalog_name"] == "products"
    assert (project / "reports" / "products" / "multilabel_combined" / "metrics.json").is_file()

    again = make(project, "model_extract_features")
    assert all(line.endswith(")") and ": up to date (" in line for line in lines(again)), again.stdout


def test_search_predict_and_serve_answer_from_the_users_catalog(shop_project):
    project, _ = shop_project
    found = make(project, "search", "QUERY=steel spade")
    assert "Garden > Tools > Spades" in found.stdout and "up to date" in found.stdout
    assert all("Heels" not in line for line in lines(found))

    photo = project / "shop" / "photos" / "g000.png"
    predicted = subprocess.run([*SHOPLENS, "predict", "--image", photo, "--title", "Acme Spade steel", "--json"],
                               cwd=project, env=clean_env(), capture_output=True, text=True)
    assert predicted.returncode == 0, predicted.stderr
    assert json.loads(predicted.stdout)["category"].startswith(("Garden > ", "Kitchen > "))

    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "serve", f"PORT={port}"], cwd=project,
                              env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                health = get(f"http://127.0.0.1:{port}/api/health")
                break
            except OSError:
                assert server.poll() is None, server.stdout.read()
                time.sleep(0.5)
        assert health == {"status": "ok", "items": 48}
        results = get(f"http://127.0.0.1:{port}/api/search?q=pan")["results"]
        assert results and all(r["category"].startswith(("Garden", "Kitchen")) for r in results)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert f"PORT: {port}" not in (project / "params.yaml").read_text()  # a run's port is not remembered


def test_make_notebooks_runs_them_from_their_own_folder_on_the_users_catalog(shop_project):
    import nbformat
    from PIL import Image

    project, _ = shop_project
    result = make(project, "notebooks")
    assert "notebooks: executed into reports/products/notebooks/" in result.stdout
    executed = project / "reports" / "products" / "notebooks"
    outputs = {}
    for name in ("dataset_statistics", "visual_search"):
        assert (executed / f"{name}.html").stat().st_size > 50_000  # the figures are inside
        notebook = nbformat.read(executed / f"{name}.ipynb", as_version=4)
        outputs[name] = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
        assert not [o for o in outputs[name] if o.output_type == "error"]
        assert not [o for o in outputs[name] if "image not found" in o.get("text", "")]
        assert sum("image/png" in o.get("data", {}) for o in outputs[name]) == 2
    assert any("catalog products: 48 rows read from shop/products.csv" in o.get("text", "")
               for o in outputs["dataset_statistics"])
    assert nbformat.read(project / "notebooks" / "visual_search.ipynb", as_version=4).cells[1].outputs == []
    figures = project / "reports" / "products" / "figures"
    assert {p.name for p in figures.iterdir()} == {"class_imbalance.png", "title_lengths.png",
                                                   "visual_search_neighbours.png", "visual_search_map.png"}
    assert not (project / "reports" / "figures").exists()
    figure = figures / "visual_search_neighbours.png"

    pixels = np.asarray(Image.open(figure).convert("RGB"), dtype=float)
    assert (np.abs(pixels - SHOP["Garden/Tools/Spades"]).sum(axis=2) < 60).sum() > 500  # real photos, not boxes


def test_one_changed_option_reruns_only_what_depends_on_it(shop_project):
    project, _ = shop_project
    vocabulary = make(project, "model_extract_features", "VOCAB_SIZE=40")
    out = vocabulary.stdout
    assert "data: up to date" in out and "features: running (VOCAB_SIZE 5000 -> 40)" in out
    assert "model multilabel_image: up to date" in out  # it reads no titles
    assert "model multilabel_text: running (text features changed)" in out
    assert "embeddings: up to date" in out

    encoder = make(project, "model_predict", "TEXT_ENCODER=cnn")
    assert "model multilabel_combined: running (TEXT_ENCODER bag -> cnn; text features changed)" in encoder.stdout
    assert "evaluation of multilabel_combined: running (model changed)" in encoder.stdout
    assert "features: up to date" in encoder.stdout


def test_a_failed_command_changes_nothing(shop_project, tmp_path):
    project, _ = shop_project
    stored = (project / "params.yaml").read_text()
    model = (project / "models" / "multilabel_combined").resolve()
    weights = tmp_path / "broken.weights.h5"
    weights.write_bytes(b"not weights")
    failed = make(project, "model_predict", "BACKBONE=mobilenetv2", f"WEIGHTS={weights}", check=False)
    assert failed.returncode != 0 and "Traceback" not in failed.stderr
    assert re.search(r"^Error: .*(cannot load as mobilenetv2 weights|cannot read 16 px images)", failed.stderr, re.M)
    assert (project / "params.yaml").read_text() == stored
    assert (project / "models" / "multilabel_combined").resolve() == model
    assert "model multilabel_combined: up to date" in make(project, "model_predict").stdout

    typo = make(project, "model_train", "EPOCH=3", check=False)
    assert typo.returncode != 0 and "unknown option EPOCH (did you mean EPOCHS?)" in typo.stderr
    assert (project / "params.yaml").read_text() == stored


def test_artifacts_of_another_catalog_are_refused(shop_project, tmp_path):
    project, _ = shop_project
    other = scratch_project(tmp_path / "other")
    for folder in ("models", "data"):
        subprocess.run(["cp", "-a", project / folder, other / folder], check=True)
    subprocess.run(["cp", "-a", project / "params.yaml", other], check=True)
    write_shop(other / "shop2", prefix="k")
    make(other, "data", "CATALOG=shop2/products.csv", "IMAGE_DIR=shop2/photos")

    photo = other / "shop2" / "photos" / "k000.png"
    for args, target in [(["predict", "--image", photo, "--title", "Acme Pan steel"],
                          "make model_train CLASSMODE=multilabel MODELMODE=combined"),
                         (["search", "--text", "pan"], "make model_extract_features")]:
        result = subprocess.run([*SHOPLENS, *map(str, args)], cwd=other, env=clean_env(), capture_output=True,
                                text=True)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "other data" in result.stderr
        assert f"run `{target}`" in result.stderr
