"""Directives that build the reference pages from the code itself, so they never drift:

- ``lumos-methods``: the method table (registry name, class, family, inputs, needs, the
  formula paragraph and the papers cited in the class docstring);
- ``lumos-metrics``: the evaluation metrics with their direction and what they need;
- ``lumos-api``: an ``automodule`` block for every public module of a package;
- ``lumos-cli``: the ``--help`` text of every command;
- ``lumos-formats``: which methods run on which model format.

Nothing is written into the source tree: each directive parses generated reStructuredText
in place (the docs build leaves ``git status`` clean).
"""
from __future__ import annotations

import inspect
import pkgutil
import re

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

PAPER = re.compile(r"(arXiv:\s?\d{4}\.\d{4,5}|[A-Z][A-Za-z\-]+(?: (?:&|and) [A-Z][A-Za-z\-]+| et al\.)?,? (?:19|20)\d\d)")


def _paragraphs(doc: str) -> list[str]:
    return [" ".join(p.split()) for p in inspect.cleandoc(doc or "").split("\n\n") if p.strip()]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


class _Generated(SphinxDirective):
    has_content = False

    def lines(self) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def run(self):
        node = nodes.section()
        node.document = self.state.document
        self.state.nested_parse(StringList(self.lines(), source=f"<{self.name}>"), self.content_offset, node)
        return node.children


class MethodTable(_Generated):
    """Every registered method: what it is, what it needs, its formula and papers."""

    def lines(self):
        import lumos
        from lumos.report.methods import family_of

        out = [".. list-table::", "   :header-rows: 1", "   :widths: 14 14 10 14 16 32", "",
               "   * - name", "     - class", "     - family", "     - inputs", "     - needs", "     - definition"]
        for name, cls in sorted(lumos.list_methods().items()):
            caps = cls.capabilities() if hasattr(cls, "capabilities") else {}
            needs = [k.removeprefix("needs_") for k, v in caps.items() if k.startswith("needs_") and v]
            if caps.get("stochastic"):
                needs.append("seed")
            paras = _paragraphs(cls.__doc__)
            summary = paras[0] if paras else ""
            papers = sorted(set(PAPER.findall(" ".join(paras))))
            text = _cell(summary) + (f" *Papers:* {_cell('; '.join(papers))}" if papers else "")
            out += [f"   * - ``{name}``", f"     - :class:`~{cls.__module__}.{cls.__qualname__}`",
                    f"     - {family_of(cls)}",
                    f"     - {', '.join(caps.get('layouts', [])) or 'any'}",
                    f"     - {', '.join(needs) or '—'}", f"     - {text or '—'}"]
        return out


class MetricTable(_Generated):
    """Every metric of ``lumos.evaluate`` with its direction and needs."""

    def lines(self):
        from lumos.metrics.evaluate import METRICS

        out = [".. list-table::", "   :header-rows: 1", "   :widths: 20 14 12 18 36", "",
               "   * - name", "     - family", "     - better", "     - needs", "     - definition"]
        for name, fn in sorted(METRICS.items()):
            info = fn.info
            better = {True: "higher", False: "lower", None: "—"}.get(info.higher_is_better, str(info.higher_is_better))
            paras = _paragraphs(fn.__doc__)
            out += [f"   * - ``{name}``", f"     - {info.category}", f"     - {better}",
                    f"     - {_cell(str(info.needs))}",
                    f"     - {_cell(paras[0]) if paras else '—'} (:func:`~{fn.__module__}.{fn.__name__}`)"]
        return out


class FormatsTable(_Generated):
    """Which methods run on which model format (:func:`lumos.core.model.formats_table`)."""

    def lines(self):
        from lumos.core.model import formats_table

        return _markdown_table_as_rst(formats_table())


def _markdown_table_as_rst(markdown: str) -> list[str]:
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in markdown.strip().splitlines()
            if line.strip().startswith("|") and not set(line.replace("|", "").strip()) <= {"-", ":", " "}]
    out = [".. list-table::", "   :header-rows: 1", ""]
    for row in rows:
        out.append(f"   * - {row[0]}")
        out += [f"     - {cell}" for cell in row[1:]]
    return out


class ApiModules(_Generated):
    """``.. lumos-api:: lumos.methods`` → automodule for each public module below it."""

    required_arguments = 1

    def lines(self):
        import importlib

        root = importlib.import_module(self.arguments[0])
        modules = [(root.__name__, hasattr(root, "__path__"))]
        if hasattr(root, "__path__"):
            modules += [(m.name, m.ispkg) for m in pkgutil.walk_packages(root.__path__, root.__name__ + ".")
                        if not any(part.startswith("_") for part in m.name.split("."))]
        out = []
        for name, is_package in modules:
            # a package's __init__ re-exports its modules' names (its __all__): only its docstring
            # here, each object is documented once, in the module that defines it
            out += [f".. rubric:: {name}", "", f".. automodule:: {name}"]
            out += ["   :no-index:", ""] if is_package else ["   :members:", ""]
        return out


class CliHelp(_Generated):
    """The ``--help`` of ``lumos`` and of each of its commands."""

    def lines(self):
        import click

        from lumos.cli import main as entry
        from lumos.cli.commands import cli

        del entry
        out = []

        def walk(command, path):
            ctx = click.Context(command, info_name=" ".join(path))
            title = " ".join(path)
            out.extend([f".. rubric:: {title}", "", ".. code-block:: text", ""])
            out.extend("   " + line for line in command.get_help(ctx).splitlines())
            out.append("")
            if isinstance(command, click.Group):
                for sub in sorted(command.commands):
                    walk(command.commands[sub], path + [sub])

        walk(cli, ["lumos"])
        return out


# -- lumos's docstrings are written for help() readers: plain-text formulas (|x|, *shape) and
# free paragraphs after a Parameters list. Before napoleon reads them, a free paragraph ends the
# list under a "Notes" header and plain-text | and unpaired * are escaped outside ``literals``.
SECTIONS = {"Parameters", "Attributes", "Returns", "Yields", "Raises", "Other Parameters"}
FIELD = re.compile(r"^[*\\]*[A-Za-z_][\w, *\\]*(\s+:(\s.*)?)?$")  # "name" or "name : type"
LITERAL = re.compile(r"(``.+?``|`[^`]+`_?|:[a-z:]+:`[^`]+`)")


def _escape(line: str) -> str:
    bullet = re.match(r"^\s*[*-] ", line)  # a list item's marker stays a marker
    if bullet:
        return bullet.group(0) + _escape(line[bullet.end():])
    parts = LITERAL.split(line)
    singles = sum(len(re.findall(r"(?<![*\\])\*(?!\*)", p)) for p in parts[::2])
    out = []
    for k, part in enumerate(parts):
        if k % 2 == 0:
            part = re.sub(r"(?<!\\)\|", r"\\|", part)
            if singles % 2:  # an unpaired *: plain text (``*shape``, a product), not emphasis
                part = re.sub(r"(?<![*\\])\*(?!\*)", r"\\*", part)
        out.append(part)
    return "".join(out)


def _close_sections(lines: list[str]) -> list[str]:
    out, section, blank = [], None, False
    for k, line in enumerate(lines):
        stripped = line.strip()
        underline = k + 1 < len(lines) and set(lines[k + 1].strip()) == {"-"} and stripped
        if underline:
            section = stripped if stripped in SECTIONS else None
        elif section and blank and line and not line[0].isspace() and not FIELD.match(stripped):
            out += ["Notes", "-----"]
            section = None
        blank = not stripped
        out.append(line)
    return out


def _docstring(app, what, name, obj, options, lines):
    if not name.startswith("lumos"):
        return
    lines[:] = [_escape(line) for line in _close_sections(list(lines))]


def setup(app):
    app.connect("autodoc-process-docstring", _docstring, priority=100)  # before napoleon (500)
    app.add_directive("lumos-methods", MethodTable)
    app.add_directive("lumos-metrics", MetricTable)
    app.add_directive("lumos-api", ApiModules)
    app.add_directive("lumos-cli", CliHelp)
    app.add_directive("lumos-formats", FormatsTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
