"""The notebooks run on a project's outputs and write their figures."""
from conftest import run_notebook


def test_dataset_statistics_notebook_runs_and_writes_figures(demo_project):
    project, _ = demo_project
    outputs = run_notebook("dataset_statistics.ipynb", project)
    figures = project / "reports" / "figures"
    assert (figures / "class_imbalance.png").stat().st_size > 10_000
    assert (figures / "title_lengths.png").stat().st_size > 10_000
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
