"""The baselines' place in the package: above the core, registered on ``import graphfuse``, and reachable
for one release under their old names in graphfuse.nn and graphfuse.models, with a DeprecationWarning."""
import ast
import subprocess
import sys
from pathlib import Path

import pytest

import graphfuse.baselines
import graphfuse.models
import graphfuse.nn
from graphfuse.deprecation import GraphfuseDeprecationWarning

PACKAGE = Path(graphfuse.baselines.__file__).resolve().parents[1]
CORE = ("graph", "modalities", "nn", "models", "train")
MOVED = [(graphfuse.nn, name) for name in ("CrossModalTransformer", "EarlyFusion", "LateFusion", "LowRankTensorFusion",
                                           "ModalityEncoder", "TensorFusion", "TransformerFusion",
                                           "dense_modalities")]
MOVED += [(graphfuse.models, name) for name in ("BaselineFusionModel", "BaselineRetrievalModel")]


@pytest.mark.parametrize("module, name", MOVED, ids=[f"{m.__name__}.{n}" for m, n in MOVED])
def test_old_names_warn_and_resolve_to_the_new_objects(module, name):
    with pytest.warns(GraphfuseDeprecationWarning,
                      match=rf"{module.__name__}\.{name} moved to graphfuse\.baselines\.{name}"):
        old = getattr(module, name)
    assert old is getattr(graphfuse.baselines, name)
    assert name not in module.__all__  # a star import stays quiet


def test_from_import_of_an_old_name_warns():
    with pytest.warns(GraphfuseDeprecationWarning, match="graphfuse.nn.EarlyFusion moved to graphfuse.baselines"):
        from graphfuse.nn import EarlyFusion
    assert EarlyFusion is graphfuse.baselines.EarlyFusion


def test_unknown_names_still_raise():
    with pytest.raises(AttributeError, match="module 'graphfuse.nn' has no attribute 'Nothing'"):
        graphfuse.nn.Nothing  # noqa: B018
    with pytest.raises(AttributeError, match="module 'graphfuse.models' has no attribute 'Nothing'"):
        graphfuse.models.Nothing  # noqa: B018


def module_level_imports(path: Path) -> set[str]:
    """The modules ``path`` imports outside functions (a function may import lazily, as the aliases do)."""
    names = set()

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            if isinstance(child, ast.Import):
                names.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module:
                names.add(child.module)
            visit(child)

    visit(ast.parse(path.read_text()))
    return names


@pytest.mark.parametrize("package", CORE)
def test_the_core_does_not_import_the_baselines(package):
    upward = {str(path.relative_to(PACKAGE)): sorted(name for name in module_level_imports(path)
                                                     if name.startswith(("graphfuse.baselines", "graphfuse.bench")))
              for path in (PACKAGE / package).rglob("*.py")}
    assert not {path: names for path, names in upward.items() if names}


def test_import_graphfuse_registers_every_baseline():
    code = ("import graphfuse.models; print(graphfuse.models.list_models(family='baseline'), "
            "graphfuse.models.list_models(family='unimodal'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert result.stdout.split("\n")[0] == ("['early-fusion', 'late-fusion', 'lowrank-fusion', 'mult', "
                                            "'tensor-fusion', 'transformer-fusion'] ['unimodal']")
