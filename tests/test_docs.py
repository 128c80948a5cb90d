"""The documentation: the Sphinx build `make docs` runs, with warnings as errors, and what it must contain."""
import pkgutil
import re
import shutil
import subprocess
import sys

import click
import pytest
from conftest import REPO
from docutils.nodes import make_id

import shoplens
from shoplens.cli import main


@pytest.fixture(scope="module")
def docs(tmp_path_factory):
    """``make docs``'s build of a copy of docs/, so the checkout's generated pages are left alone."""
    root = tmp_path_factory.mktemp("docs")
    shutil.copytree(REPO / "docs", root / "docs", ignore=shutil.ignore_patterns("_build", "_autosummary"))
    (root / "src").symlink_to(REPO / "src")  # the pages include ../src/shoplens/config.py
    html = root / "html"
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-b", "html", root / "docs", html],
                            capture_output=True, text=True, timeout=300)
    return result, html


def page_ids(path):
    return set(re.findall(r'\bid="([^"]+)"', path.read_text()))


def commands(group, path):
    """``(command path, command)`` of every visible command under ``group``, subcommands included."""
    for name, command in group.commands.items():
        if command.hidden:
            continue
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from commands(command, f"{path} {name}")


def test_docs_build_without_warnings(docs):
    result, html = docs
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for page in ("index", "quickstart", "catalogs", "pipeline", "visual_search", "gallery", "scaling", "configuration"):
        assert (html / f"{page}.html").is_file(), page


def test_cli_reference_documents_every_command_and_option(docs):
    _, html = docs
    ids = page_ids(html / "cli.html")
    found = list(commands(main, "shoplens"))
    assert {"shoplens make-dataset", "shoplens train", "shoplens predict"} <= {path for path, _ in found}
    for path, command in found:
        assert make_id(path) in ids, f"`{path}` is missing from the command-line reference"
        for option in command.params:
            if isinstance(option, click.Option) and not option.hidden:
                assert make_id(f"cmdoption-{path}-{option.opts[0]}") in ids, f"{path} {option.opts[0]}"


def test_api_reference_lists_every_module(docs):
    _, html = docs
    modules = ["shoplens"] + [m.name for m in pkgutil.walk_packages(shoplens.__path__, "shoplens.")
                              if not any(part.startswith("_") for part in m.name.split("."))]
    assert {"shoplens.cli", "shoplens.config", "shoplens.data.catalog", "shoplens.models.train_model"} <= set(modules)
    api = html / "_autosummary"
    assert 'href="_autosummary/shoplens.html"' in (html / "api.html").read_text()
    for name in modules:
        page = api / f"{name}.html"
        assert page.is_file(), f"{name} has no page in the API reference"
        assert f"module-{name}" in page_ids(page), f"{name}: its page documents no module"
        if name != "shoplens":
            parent = api / f"{name.rpartition('.')[0]}.html"
            assert f'href="{name}.html"' in parent.read_text(), f"{name} is not listed on its package's page"
