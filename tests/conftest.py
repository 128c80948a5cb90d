"""Shared fixtures: small hand-made catalogs and a demo project run through data and features."""
import os
import shutil
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

# Before shoplens is imported: its default paths point into a scratch project, never into this checkout's
# own data/ and models/, and no make variable given to `make test` leaks into the commands tests run.
os.environ["SHOPLENS_PROJECT_DIR"] = tempfile.mkdtemp(prefix="shoplens-tests-")
os.environ.pop("SHOPLENS_GIVEN", None)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # failures read better without TensorFlow's C++ log lines

import numpy as np
import pandas as pd
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED_FASHION = REPO.parent / "shared" / "datasets" / "fashion-products"
SHOPLENS = [sys.executable, "-m", "shoplens.cli"]

CATEGORIES = ["Apparel > Topwear > Tshirts", "Apparel > Bottomwear > Jeans", "Footwear > Shoes > Sneakers"]


def write_image(path, colour, size=(32, 32)):
    """A small JPEG of one colour with a little noise, so no two are identical."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    pixels = np.clip(np.array(colour) + rng.integers(-10, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG")


def word(i):
    """A made-up word of its own for each number: ``vaa``, ``vab``, ..."""
    return "v" + chr(97 + i // 26 % 26) + chr(97 + i % 26)


def make_catalog(folder, n_per_category=12, rows=None, titles=True, images=True):
    """Write ``folder/catalog.csv`` (generic layout) and its images; return the folder.

    ``rows`` (dicts) are appended as written, to plant bad rows.
    """
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    records = []
    for c, category in enumerate(CATEGORIES):
        for i in range(n_per_category):
            item = f"{c}{i:03d}"
            record = {"id": item, "category": category, "gender": ["Men", "Women"][i % 2]}
            if titles:  # distinct after cleaning (which drops digits): the items are no duplicates of each other
                record["title"] = f"Brand{i % 3} {category.split(' > ')[-1]} model {word(i)} in Blue"
            if images:
                record["image"] = f"{item}.jpg"
                write_image(folder / "images" / f"{item}.jpg", (60 * c, 100, 200 - 60 * c))
            records.append(record)
    pd.DataFrame(records + list(rows or [])).to_csv(folder / "catalog.csv", index=False)
    return folder


def clean_env(**extra):
    """The environment of a command a user types: no make or shoplens variables of this test run."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "SHOPLENS_"))}
    return {**env, **extra}


def run_cli(*args, cwd, env=None):
    """Run the real command line in a project folder; return the finished process."""
    env = {**os.environ, "SHOPLENS_PROJECT_DIR": str(cwd), **(env or {})}
    return subprocess.run([*SHOPLENS, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True)


def scratch_project(folder):
    """A project folder as a clone gives it, sharing this checkout's code and its installed .venv."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("Makefile", "setup.py", "requirements.txt", "README.md", ".venv", "src"):
        (folder / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "notebooks", folder / "notebooks")  # a link would lead `..` back to this checkout
    return folder


def make(project, *args, check=True, timeout=900, env=None):
    """Run ``make`` in a project as a user does (in ``env``, by default :func:`clean_env`); return the finished
    process (asserting success if ``check``)."""
    result = subprocess.run(["make", "--no-print-directory", *map(str, args)], cwd=project, env=env or clean_env(),
                            capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def run_notebook(name, project):
    """Execute ``notebooks/<name>`` on a project's outputs; return the outputs of its code cells."""
    import nbformat
    from nbclient import NotebookClient

    folder, env = REPO / "notebooks", {**clean_env(), "SHOPLENS_PROJECT_DIR": str(project)}
    notebook = nbformat.read(folder / name, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(folder)}}).execute(env=env)
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory):
    """A project folder with a 600-item demo catalog made into splits and 32-pixel features (a few epochs on
    them teach a model the demo's product types)."""
    from shoplens.data.demo_catalog import generate_demo_catalog
    from shoplens.data.make_dataset import make_dataset
    from shoplens.features.build_features import build_features

    project = tmp_path_factory.mktemp("demo_project")
    catalog = project / "data" / "raw" / "demo"
    generate_demo_catalog(catalog, n=600, seed=7, progress=False)
    processed = project / "data" / "processed"
    summary = make_dataset(catalog, min_items=5, interim_dir=project / "data" / "interim",
                           processed_dir=processed, progress=False)
    build_features(image_size=32, processed_dir=processed, progress=False)
    return project, summary


@pytest.fixture(scope="session")
def gallery_project(demo_project, tmp_path_factory):
    """A copy of the demo project ready to search and serve: the image and text models (one epoch each),
    the image embeddings, the search index and the audit. Its own copy, so no other test's training changes it."""
    from shoplens.audit.audit import audit
    from shoplens.models.extract_features import extract_features, load_features_file
    from shoplens.models.train_model import train_model
    from shoplens.search.index import index_for

    source, _ = demo_project
    project = tmp_path_factory.mktemp("gallery_project")
    processed = project / "data" / "processed"
    shutil.copytree(source / "data" / "processed", processed)
    dirs = {"processed_dir": processed, "features_dir": processed / "features", "models_dir": project / "models"}
    for modelmode in ("image", "text"):
        train_model("multilabel", modelmode, backbone="simple", weights="none", epochs=1, verbose=0,
                    logs_dir=project / "logs", **dirs)
    extract_features(progress=False, **dirs)
    models = project / "models"
    index_for(load_features_file(models / "embeddings" / "extracted_features.npz", processed_dir=processed),
              models_dir=models)
    audit(processed_dir=processed, reports_dir=project / "reports")
    return project


@pytest.fixture(scope="session")
def crop_project(gallery_project, tmp_path_factory):
    """A copy of the gallery project whose image model is trained with object-centred crops (CROP=auto: one epoch
    on the photos, one on the photos and their crops), and its embeddings and index of the crops."""
    from shoplens.models.extract_features import extract_features, load_features_file
    from shoplens.models.train_model import train_model
    from shoplens.search.index import index_for

    project = tmp_path_factory.mktemp("crop_project")
    for folder in ("data/processed", "models"):
        shutil.copytree(gallery_project / folder, project / folder, symlinks=True)
    processed, models = project / "data" / "processed", project / "models"
    dirs = {"processed_dir": processed, "features_dir": processed / "features", "models_dir": models}
    train_model("multilabel", "image", backbone="simple", weights="none", epochs=1, crop="auto", verbose=0,
                logs_dir=project / "logs", **dirs)
    extract_features(progress=False, **dirs)
    index_for(load_features_file(models / "embeddings" / "extracted_features.npz", processed_dir=processed),
              models_dir=models)
    return project
