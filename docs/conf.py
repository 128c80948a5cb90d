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


class ProjectOptions(Directive):
    """``.. project-options::``: every project option with its default, the commands that read it and its help,
    as `make params` lists them."""

    def run(self):
        import click

        from shoplens.cli import _project_options

        options = {}
        for command_name, command, param in _project_options():
            default = param.get_default(click.Context(command, info_name=command_name), call=True)
            entry = options.setdefault(param.var, {"default": default, "remember": param.remember, "help": "",
                                                   "commands": []})
            entry["commands"].append(command_name)
            entry["help"] = entry["help"] or (param.help or "")
        rows = [(name, "" if o["default"] is None else str(o["default"]).replace(f"{config.PROJECT_DIR}/", ""),
                 ", ".join(dict.fromkeys(o["commands"])) + ("" if o["remember"] else " (per run)"), o["help"])
                for name, o in options.items()]
        table = nodes.table()
        group = nodes.tgroup(cols=4)
        table += group
        for width in (18, 14, 22, 46):
            group += nodes.colspec(colwidth=width)
        head, body = nodes.thead(), nodes.tbody()
        group += head
        group += body
        for cells, section in [(("option", "default", "read by", "meaning"), head), *[(r, body) for r in rows]]:
            row = nodes.row()
            for cell in cells:
                entry = nodes.entry()
                entry += nodes.paragraph(text=cell)
                row += entry
            section += row
        return [table]


def setup(app):
    app.add_directive("project-options", ProjectOptions)
    app.connect("sphinx-click-process-description", _show_defaults)
    app.connect("sphinx-click-process-options", _tidy_defaults)
