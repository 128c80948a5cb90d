"""The Makefile as a user drives it: real `make` runs in a scratch copy of the project."""
import os
import shutil
import subprocess

import pytest
from conftest import REPO, make_catalog, run_notebook


@pytest.fixture
def project(tmp_path):
    """A scratch project with this checkout's virtual environment and a copy of its code."""
    for name in ("Makefile", "setup.py", "requirements.txt", "README.md", ".venv"):
        (tmp_path / name).symlink_to(REPO / name)
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def make(project, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    result = subprocess.run(["make", "--no-print-directory", *args], cwd=project, env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.skipif(not (REPO / ".venv" / ".installed").exists(), reason="needs the project's .venv (make test)")
def test_targets_rerun_only_when_inputs_or_options_change(project):
    catalog = make_catalog(project / "shop")
    first = make(project, "features", f"CATALOG={catalog}", "MIN_ITEMS=5", "IMAGE_SIZE=16")
    assert "kept 36" in first and "images 16x16" in first

    again = make(project, "features", f"CATALOG={catalog}", "MIN_ITEMS=5", "IMAGE_SIZE=16")
    assert "make-dataset" not in again and "build-features" not in again

    option = make(project, "features", f"CATALOG={catalog}", "MIN_ITEMS=5", "IMAGE_SIZE=8")
    assert "make-dataset" not in option and "images 8x8" in option

    (catalog / "catalog.csv").touch()
    changed = make(project, "data", f"CATALOG={catalog}", "MIN_ITEMS=5")
    assert "make-dataset" in changed


def test_dataset_statistics_notebook_runs_and_writes_figures(demo_project):
    project, _ = demo_project
    outputs = run_notebook("dataset_statistics.ipynb", project)
    figures = project / "reports" / "figures"
    assert (figures / "class_imbalance.png").stat().st_size > 10_000
    assert (figures / "title_lengths.png").stat().st_size > 10_000
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
