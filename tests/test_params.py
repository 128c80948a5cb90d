"""Remembered options: params.yaml, `make params`, and make re-running exactly what changed."""
import os
import re
import subprocess

import pytest
from conftest import REPO, SHOPLENS, clean_env, make, make_catalog, scratch_project, write_image

from shoplens import ShoplensError, params

pytestmark = pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(),
                                reason="needs the project's .venv (make test)")


def errors(result):
    """The lines of stderr that are not make's own report of a failed recipe."""
    return [line for line in result.stderr.splitlines() if not line.startswith("make: ***")]


@pytest.fixture
def project(tmp_path):
    return scratch_project(tmp_path / "project")


def test_a_path_with_spaces_and_quotes_is_kept_exactly_and_its_changes_seen(project):
    catalog = make_catalog(project / "my shop's \"best\" items")
    first = make(project, "features", f"CATALOG={catalog.name}", "MIN_ITEMS=5", "IMAGE_SIZE=8")
    assert "read 36 rows from my shop's \"best\" items/catalog.csv" in first.stdout
    assert params.load(project / "params.yaml")["CATALOG"] == catalog.name
    assert "data: up to date" in make(project, "data").stdout

    with open(catalog / "catalog.csv", "a") as csv:  # the user edits the catalog: one more item
        csv.write("9999,Brand0 Jeans number 99 in Blue,9999.jpg,Apparel > Bottomwear > Jeans,Men\n")
    write_image(catalog / "images" / "9999.jpg", (0, 100, 200))
    edited = make(project, "features")
    assert "data: running (catalog.csv changed; image folder changed)" in edited.stdout
    assert "read 37 rows" in edited.stdout and "features: running (data changed)" in edited.stdout

    os.utime(catalog / "images" / "0001.jpg", ns=(0, 0))  # a photo replaced
    assert "data: running (image folder changed)" in make(project, "data").stdout


def test_make_params_lists_every_option_and_sets_one_without_running_anything(project):
    listing = make(project, "params").stdout.splitlines()
    assert listing[0].split() == ["option", "value", "from", "used", "by"]
    rows = {line.split()[0]: line for line in listing[1:]}
    assert "CATALOG" in rows and "demo" in rows["CATALOG"] and "default" in rows["CATALOG"]
    assert "QUERY" not in rows and "PORT" not in rows  # options of one run are not remembered

    make(project, "params", "EPOCHS=7", "SEED=3")
    assert params.load(project / "params.yaml") == {"EPOCHS": 7, "SEED": 3}
    rows = {line.split()[0]: line for line in make(project, "params").stdout.splitlines()[1:]}
    assert rows["EPOCHS"].split()[1:3] == ["7", "params.yaml"]
    assert not (project / "data" / "processed").exists()

    # A remembered flag is kept as 0 or 1 and read back as one.
    make(project, "params", "FINETUNE=1", "CLASS_WEIGHTS=0")
    assert params.load(project / "params.yaml") == {"EPOCHS": 7, "SEED": 3, "FINETUNE": 1, "CLASS_WEIGHTS": 0}
    helped = subprocess.run([*SHOPLENS, "train", "--help"], cwd=project, capture_output=True, text=True,
                            env=clean_env(SHOPLENS_PROJECT_DIR=str(project)))
    assert helped.returncode == 0 and "--finetune / --frozen" in helped.stdout, helped.stderr
    make(project, "params", "FINETUNE=0")

    bad = make(project, "params", "EPOCHS=many", check=False)
    assert bad.returncode != 0 and errors(bad) == ["Error: make command line: EPOCHS=many: 'many' is not a valid "
                                                  "integer range."]
    assert params.load(project / "params.yaml") == {"EPOCHS": 7, "SEED": 3, "FINETUNE": 0, "CLASS_WEIGHTS": 0}


@pytest.mark.parametrize("option, message", [
    ("IMAGE_SIZE=4096", "IMAGE_SIZE=4096: 4096 is not in the range 8<=x<=1024."),
    ("CATALOG=nowhere.csv", "CATALOG=nowhere.csv: 'nowhere.csv': no such file or folder"),
    ("SPLIT=0.8,0.2", "SPLIT needs 3 ratios"),
    ("LANGUAGE=klingon", "unknown language 'klingon'"),
])
def test_a_bad_option_is_one_line_and_changes_nothing(project, option, message):
    catalog = make_catalog(project / "shop")
    make(project, "features", f"CATALOG={catalog}", "MIN_ITEMS=5", "IMAGE_SIZE=8")
    stored = (project / "params.yaml").read_text()
    splits = (project / "data" / "processed" / "splits").resolve()
    result = make(project, "features", option, check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(errors(result)) == 1 and message in errors(result)[0]
    assert (project / "params.yaml").read_text() == stored
    assert (project / "data" / "processed" / "splits").resolve() == splits


def test_a_damaged_params_file_is_one_line(project):
    (project / "params.yaml").write_text("CATALOG: [unclosed\n")
    result = subprocess.run([*SHOPLENS, "params"], cwd=project, env=clean_env(), capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"Error: {project / 'params.yaml'}: not valid YAML at line 2; fix it or delete it to start from the defaults"]
    with pytest.raises(ShoplensError, match="expected lines of NAME: value"):
        (project / "params.yaml").write_text("- a list\n")
        params.load(project / "params.yaml")


def test_the_terminal_shows_the_products_lines_only(project):
    catalog = make_catalog(project / "shop")
    # As a user types it: TensorFlow's log level is the command's own choice, not this test run's.
    env = {k: v for k, v in clean_env().items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    # Image training augments its photos, which is when TensorFlow's cost estimator used to warn.
    out = make(project, "model_train", f"CATALOG={catalog}", "MIN_ITEMS=5", "IMAGE_SIZE=16", "EPOCHS=2",
               "BACKBONE=simple", "MODELMODE=image", env=env)
    for noise in ("cuInit", "cuda", "oneDNN", "absl", "I0000", "E0000", "W0000", "PredictCost", "tensorflow/core"):
        assert noise not in out.stderr and noise not in out.stdout, noise
    assert not re.search(r"^[IWEF]\d{4} ", out.stdout + out.stderr, re.MULTILINE)  # no C++ log line of any kind
    # Not on a terminal, training writes plain lines, no progress bar redrawn with carriage returns.
    assert re.search(r"^epoch 2/2: [\d,]+ items, \d+ s; loss \d+\.\d+, val_loss \d+\.\d+; val accuracy ", out.stdout,
                     re.MULTILINE), out.stdout
    assert "\r" not in out.stdout and max(map(len, out.stdout.splitlines())) < 200
    verbose = make(project, "model_train", "VERBOSE=1", "FORCE=1")
    assert "model multilabel_image: running (asked to)" in verbose.stdout
    assert "VERBOSE" not in (project / "params.yaml").read_text()
