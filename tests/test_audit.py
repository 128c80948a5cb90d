"""The catalog audit: planted wrong categories and duplicates are found; bad options are refused in one line."""
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from PIL import Image, ImageOps

from shoplens import ShoplensError
from shoplens.audit.audit import audit, load_audit
from shoplens.audit.duplicates import duplicate_table
from shoplens.audit.label_issues import label_issue_table
from shoplens.data.demo_catalog import generate_demo_catalog
from shoplens.data.images import inspect_image
from shoplens.data.make_dataset import make_dataset


@pytest.fixture(scope="module")
def audited(tmp_path_factory):
    """A demo catalog with 5 % of its products planted under a wrong category and as many duplicated, audited."""
    project = tmp_path_factory.mktemp("audit")
    catalog = project / "data" / "raw" / "demo"
    generate_demo_catalog(catalog, n=400, seed=11, progress=False, planted=0.05)
    processed = project / "data" / "processed"
    make_dataset(catalog, min_items=5, interim_dir=project / "data" / "interim", processed_dir=processed,
                 progress=False)
    summary = audit(processed_dir=processed, reports_dir=project / "reports")
    planted = json.loads((catalog / "planted.json").read_text())
    return project, summary, planted, load_audit(summary["catalog"], project / "reports")


def test_planted_wrong_categories_are_flagged_first(audited):
    _, summary, planted, (_, issues, _) = audited
    wrong = set(planted["wrong_category"])
    assert len(wrong) == 20
    flagged = list(dict.fromkeys(issues["id"]))
    assert len(wrong & set(flagged)) >= 0.8 * len(wrong)  # recall
    top = flagged[:len(wrong)]
    assert len(wrong & set(top)) >= 0.6 * len(top)  # precision of the top of the ranking
    for row in issues[issues["id"].isin(wrong)].itertuples():
        if row.level == "product_details":  # the photo and title show the product the generator drew
            shown = planted["wrong_category"][row.id]["shown"]
            assert row.given == row.category.split(" > ")[-1] != shown.split(" > ")[-1]
    assert summary["evidence"] == ["title"] and summary["out_of_fold_accuracy"] > 0.6


def test_planted_duplicates_are_grouped_with_their_original(audited):
    _, summary, planted, (_, _, duplicates) = audited
    images = duplicates[duplicates["kind"].isin(["exact_image", "near_image"])]
    group_of = images.groupby("id")["group"].apply(set)
    found = [copy for copy, original in planted["duplicates"].items()
             if group_of.get(copy, set()) & group_of.get(original, set())]
    assert len(found) >= 0.95 * len(planted["duplicates"])  # re-encoded, resized and mirrored copies alike
    assert summary["duplicates"]["same_title"]["groups"] >= len(planted["duplicates"])


def photo(path, colour, shape):
    """A product shot: a coloured box (centred, or to the ``left``) on white."""
    pixels = np.full((96, 96, 3), 255, np.uint8)
    left, right = {"box": (20, 76), "left": (8, 50)}[shape]
    pixels[16:80, left:right] = colour
    pixels[30:40, left + 5:left + 15] = 40  # a detail that makes the shot asymmetric
    Image.fromarray(pixels).save(path, quality=95)
    return path


def test_duplicate_groups_by_kind_and_category_disagreement(tmp_path):
    files = {"a": photo(tmp_path / "a.jpg", (200, 30, 30), "left"),
             "c": photo(tmp_path / "c.jpg", (30, 30, 200), "left"),
             "f": photo(tmp_path / "f.jpg", (30, 160, 30), "box")}
    with Image.open(files["a"]) as shot:
        shot.save(tmp_path / "b.jpg", quality=40)  # saved again
        ImageOps.mirror(shot).save(tmp_path / "d.jpg", quality=90)  # mirrored
    shutil.copy(files["f"], tmp_path / "e.jpg")  # the same file
    ids = list("abcdef")
    hashes = [inspect_image(tmp_path / f"{i}.jpg")[1:] for i in ids]
    catalog = pd.DataFrame(hashes, columns=["image_sha1", "image_phash", "image_phash_mirror"]).assign(
        id=ids, category=["A > x", "B > y", "A > x", "A > x", "A > x", "B > y"],
        clean_title=["red shoe", "red shoe", "blue shoe", "green bag", "grey sock", "pink cap"],
        image_path=[str(tmp_path / f"{i}.jpg") for i in ids])

    table = duplicate_table(catalog, max_distance=4, max_difference=2)
    groups = {kind: sorted(map(sorted, part.groupby("group")["id"].apply(list))) for kind, part in
              table.groupby("kind")}
    # c is a itself in another colour: the same hash, not the same photo.
    assert groups == {"exact_image": [["e", "f"]], "near_image": [["a", "b", "d"]], "same_title": [["a", "b"]]}
    disagree = table.groupby("group")["categories_disagree"].first()
    assert disagree[table.loc[table["id"] == "a", "group"]].all() and disagree["exact_image-1"]
    assert set(duplicate_table(catalog, max_difference=255).query("kind == 'near_image'")["id"]) == set("abcd")


def test_label_issues_rank_the_least_likely_given_label_first():
    catalog = pd.DataFrame({"id": ["p", "q", "r", "s"], "category": ["A > x", "A > x", "B > y", "B > y"],
                            "level_1": ["A", "A", "B", "B"], "level_2": ["x", "x", "y", "y"]})
    paths = np.array(["A > x", "B > y"])
    probabilities = np.array([[0.9, 0.1], [0.05, 0.95], [0.2, 0.8], [0.6, 0.4]])
    issues = label_issue_table(catalog, paths, probabilities, ["level_1", "level_2"])
    assert issues["id"].tolist()[:1] == ["q"] and set(issues["id"]) <= {"q", "s"}
    first = issues.iloc[0]
    assert (first["given"], first["suggested"], first["suggested_path"]) == ("A", "B", "B > y")
    assert first["given_probability"] == pytest.approx(0.05)


def test_the_audit_command_reports_once_and_refuses_bad_options(audited, tmp_path):
    project, summary, _, _ = audited
    folder = project / "reports" / summary["catalog"] / "audit"
    assert {p.name for p in folder.iterdir()} >= {"label_issues.csv", "duplicates.csv", "summary.json",
                                                  "label_issues.png"}
    result = run_cli("audit", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "likely mis-categorised" in result.stdout and "near image" in result.stdout
    again = run_cli("audit", cwd=project)
    assert "audit: up to date" in again.stdout

    bad = run_cli("audit", "--hash-distance", "40", cwd=project)
    assert bad.returncode != 0 and len(bad.stderr.strip().splitlines()) == 1 and "40" in bad.stderr
    with pytest.raises(ShoplensError, match="AUDIT_FOLDS=500 needs a category with at least 500 products"):
        audit(folds=500, processed_dir=project / "data" / "processed", reports_dir=tmp_path)
    empty = run_cli("audit", cwd=tmp_path)
    assert empty.returncode != 0 and "run `make data`" in empty.stderr and "Traceback" not in empty.stderr
