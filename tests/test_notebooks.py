"""The notebooks run on a project's outputs and write their figures into the catalog's folder, titled with it.

tests/test_own_catalog.py runs them again, through `make notebooks`, on a catalog that is not the demo."""
import numpy as np
from conftest import run_notebook
from PIL import Image


def text_of(outputs):
    return "".join(o.get("text", "") for o in outputs)


def test_dataset_statistics_notebook_runs_and_writes_figures(demo_project):
    project, _ = demo_project
    outputs = run_notebook("dataset_statistics.ipynb", project)
    assert not [o for o in outputs if o.output_type == "error"]
    figures = project / "reports" / "demo" / "figures"
    assert (figures / "class_imbalance.png").stat().st_size > 10_000
    assert (figures / "title_lengths.png").stat().st_size > 10_000
    assert not (project / "reports" / "figures").exists()
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert "catalog demo: 600 rows read from " in text_of(outputs)


def test_visual_search_notebook_runs_and_writes_figures(gallery_project):
    outputs = run_notebook("visual_search.ipynb", gallery_project)
    assert not [o for o in outputs if o.output_type == "error"]
    figures = gallery_project / "reports" / "demo" / "figures"
    assert (figures / "visual_search_neighbours.png").stat().st_size > 50_000
    assert (figures / "visual_search_map.png").stat().st_size > 20_000
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert "catalog demo, 585 products" in text_of(outputs)
    assert "image not found" not in text_of(outputs)
    pixels = np.asarray(Image.open(figures / "visual_search_neighbours.png").convert("L"))
    assert pixels.std() > 40  # the products' photos, not grey boxes
