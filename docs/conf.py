"""Sphinx configuration of graphfuse's documentation site: MyST Markdown guides, and an API reference
generated from the docstrings (autodoc + autosummary, Google-style ``Args:`` read by napoleon).

``make docs`` builds it with warnings as errors; ``tests/test_docs.py`` checks that every public name
is in the reference and runs every Python block of the guides."""
from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's graphfuse, whatever is installed

import graphfuse  # noqa: E402

project = "graphfuse"
author = "the graphfuse authors"
copyright = "the graphfuse authors"
release = version = graphfuse.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path = ["_templates"]

# MyST: $...$ math in the guides, ::: fences, and anchors on headings for links like page.md#section.
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The API reference: one page per public name, generated at build time under api/generated/.
autosummary_generate = True
autosummary_imported_members = True
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_default_options = {"show-inheritance": True}

# Docstrings follow PyG's layer files: Google-style Args / Returns, and a "Shapes" section.
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_custom_sections = ["Shapes"]
napoleon_use_ivar = True  # an Attributes: section as fields, not as a second description of each attribute

html_theme = "furo"
html_title = f"graphfuse {release}"


# What autodoc would show that graphfuse did not write -------------------------------------------
def drop_foreign_docstrings(app, what, name, obj, options, lines):
    """Leaves out docstrings graphfuse did not write: a constant's type's (a dict's, a Path's), and a
    method's inherited from torch (``Module.forward``'s, ``Function.forward``'s, which refer to labels
    of torch's own documentation). A method without a docstring of its own keeps the one it inherits
    from a graphfuse class."""
    if what == "data" and lines and getattr(obj, "__doc__", None) == getattr(type(obj), "__doc__", None):
        lines.clear()
    elif what == "method" and lines and inherited_from_outside(obj):
        lines.clear()


def inherited_from_outside(method) -> bool:
    """Whether ``method``'s docstring comes from a class outside graphfuse (it has none of its own)."""
    function = getattr(method, "__func__", method)
    if getattr(function, "__doc__", None):
        return False  # its own docstring
    owner = sys.modules.get(getattr(function, "__module__", ""))
    for part in getattr(function, "__qualname__", "").split(".")[:-1]:
        owner = getattr(owner, part, None)
    if not isinstance(owner, type):
        return False
    attribute = function.__name__
    for cls in owner.__mro__[1:]:
        if attribute in vars(cls) and getattr(vars(cls)[attribute], "__doc__", None):
            return not cls.__module__.startswith("graphfuse")
    return False


def skip_namedtuple_fields(app, what, name, obj, skip, options):
    """A NamedTuple's fields are described by its ``Attributes:`` section, not by "Alias for field
    number N" entries of their own."""
    if isinstance(getattr(obj, "__doc__", None), str) and obj.__doc__.startswith("Alias for field number"):
        return True
    return None


# Cross-references to re-exported names ------------------------------------------------------------
def import_object(dotted: str):
    """The object a dotted name stands for, or None (the longest importable prefix, then attributes)."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                obj = getattr(obj, attribute)
        except AttributeError:
            return None
        return obj
    return None


DOCUMENTED: dict[int, str] = {}


def documented_names(env) -> dict[int, str]:
    """id(object) -> the name it is described under, for every class, function and method the site
    describes; computed at the first reference left unresolved, when every page has been read (and
    kept in this process only, since ids mean nothing in another)."""
    if not DOCUMENTED:
        for name, entry in env.get_domain("py").objects.items():
            obj = import_object(name) if entry.objtype in ("class", "exception", "function", "method") else None
            if obj is not None:
                DOCUMENTED.setdefault(id(getattr(obj, "__func__", obj)), name)
    return DOCUMENTED


def resolve_reexports(app, env, node, contnode):
    """Links a docstring's reference to a name where it is not described: ``graphfuse.Pipeline`` (a
    re-export of ``graphfuse.pipeline.Pipeline``), ``graphfuse.data.schema.NodeSpec`` (its defining
    module), a short name relative to the module of the docstring, or the one class the site
    describes under that short name (``PretrainedModality``)."""
    if node.get("refdomain") != "py":
        return None
    target, module = node["reftarget"].lstrip("~."), node.get("py:module") or ""
    candidates = [target] if target.startswith("graphfuse.") else []
    if module.startswith("graphfuse"):
        candidates += [f"{module}.{target}", f"{module.rpartition('.')[0]}.{target}"]
    for candidate in candidates:
        obj = import_object(candidate)
        name = documented_names(env).get(id(getattr(obj, "__func__", obj))) if obj is not None else None
        if name is not None:
            return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", name, node, contnode)
    if module.startswith("graphfuse") and "." not in target:  # a class of another module, by its name alone
        named = {name for name in documented_names(env).values() if name.rpartition(".")[2] == target}
        if len(named) == 1:
            return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder, "obj", named.pop(), node,
                                                     contnode)
    return None


# The README, included as a page ------------------------------------------------------------------
LINK = re.compile(r"\[([^\]]*)\]\((?!https?:|#|mailto:)([^)#\s]+)(#[^)\s]*)?\)")


def readme_links(app, relative_path, parent_docname, content):
    """The README's links to files of the repository point there from ``docs/`` (MyST makes a local
    file a download); a link to a folder, which a site cannot serve, keeps its text alone."""
    if Path(relative_path).name != "README.md":
        return

    def relink(match: re.Match) -> str:
        text, path, anchor = match[1], match[2], match[3] or ""
        if (ROOT / path).is_file():
            return f"[{text}](../{path}{anchor})"
        return text if (ROOT / path).is_dir() else match[0]

    content[0] = LINK.sub(relink, content[0])


def setup(app):
    app.connect("missing-reference", resolve_reexports)
    app.connect("include-read", readme_links)
    app.connect("autodoc-process-docstring", drop_foreign_docstrings)
    app.connect("autodoc-skip-member", skip_namedtuple_fields)
