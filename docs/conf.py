"""Sphinx configuration of the shoplens documentation (``make docs``)."""
from docutils import nodes
from docutils.parsers.rst import Directive

import shoplens
from shoplens import config

project = "shoplens"
author = "the shoplens authors"
copyright = "the shoplens authors"
version = release = shoplens.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx_click",
]

exclude_patterns = ["_build"]

# The API reference is generated from the installed package: every module, found
# recursively, gets a page, so modules added later appear without editing the docs.
autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
# Defaults in signatures read as written (config.PROCESSED_DIR), not as this machine's absolute paths.
autodoc_preserve_defaults = True
autodoc_typehints = "description"
# Only shoplens' own docstrings: an override without one (a Keras callback hook) is not documented with Keras' text.
autodoc_inherit_docstrings = False

napoleon_google_docstring = False
napoleon_numpy_docstring = True

html_theme = "furo"
html_title = f"shoplens {release}"


def _show_defaults(app, ctx, lines):
    """Show option defaults as ``shoplens --help`` does.

    sphinx-click makes its click contexts without the commands' ``context_settings``,
    so the group's ``show_default`` is applied here; its subcommands inherit it.
    """
    setting = ctx.command.context_settings.get("show_default")
    if setting is not None:
        ctx.show_default = setting


def _tidy_defaults(app, ctx, lines):
    """Default paths as the project-relative paths they are, not this machine's absolute ones.

    Options without a default hold click's internal ``Sentinel.UNSET`` (click 8.3+), which
    sphinx-click would print as a default; their help text already says what happens.
    """
    lines[:] = [line.replace(f"{config.PROJECT_DIR}/", "") for line in lines if "Sentinel.UNSET" not in line]


class MakeDefaults(Directive):
    """``.. make-defaults::``: the Make variables and their defaults, as the Makefile reads them."""

    def run(self):
        text = config.make_defaults()
        return [nodes.literal_block(text, text, language="make")]


def setup(app):
    app.add_directive("make-defaults", MakeDefaults)
    app.connect("sphinx-click-process-description", _show_defaults)
    app.connect("sphinx-click-process-options", _tidy_defaults)
