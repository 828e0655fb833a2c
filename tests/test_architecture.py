"""The package's imports point down its layers: no cycles, no upward imports, no private cross-module access."""
import ast
import pathlib

import pytest

import graphfuse

ROOT = pathlib.Path(graphfuse.__file__).parent

# Bottom to top; a module may import modules of its own layer or below. The first prefix that
# matches a module names its layer.
LAYERS = (
    ("utilities", ("graphfuse.typing", "graphfuse.checks", "graphfuse.io", "graphfuse.config", "graphfuse.checkpoint",
                   "graphfuse.registry", "graphfuse.debug", "graphfuse.deprecation", "graphfuse.version")),
    ("backbones", ("graphfuse.backbones",)),
    ("node sets and edge patterns", ("graphfuse.data.nodes", "graphfuse.data.edges", "graphfuse.data.cache",
                                     "graphfuse.data.layout", "graphfuse.data.compare", "graphfuse.data.functions")),
    ("modalities", ("graphfuse.data.modalities",)),
    ("cross-modal strategies", ("graphfuse.data.cross",)),
    ("schema, builder and collation", ("graphfuse.data",)),
    ("nn", ("graphfuse.nn",)),
    ("models", ("graphfuse.models",)),
    ("training", ("graphfuse.train",)),
    ("pipeline", ("graphfuse.pipeline",)),
    ("benchmark layer", ("graphfuse.baselines", "graphfuse.datasets", "graphfuse.testing", "graphfuse.bench")),
    # Its command trains on the embedded tasks and shares the benchmark's option checks.
    ("explanations", ("graphfuse.explain",)),
    # The package's front door and the deprecated aliases of moved packages sit on top.
    ("front", ("graphfuse.graph", "graphfuse.modalities", "graphfuse")),
)
# The only module allowed to touch PyG's private Batch bookkeeping, behind its self-check.
PYG_PRIVATE = {"_slice_dict", "_inc_dict", "_num_graphs"}
PYG_PRIVATE_OWNER = "graphfuse.data.collate"


def module_name(path: pathlib.Path) -> str:
    parts = ["graphfuse", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def layer(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS")


def resolve(importer: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = importer if MODULES[importer].name == "__init__.py" else importer.rpartition(".")[0]
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports(module: str) -> list[tuple[str, int, list[str]]]:
    """``(imported module, line, imported names)`` of every graphfuse import in ``module``, at any depth
    (also inside functions and ``TYPE_CHECKING`` blocks)."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno, []) for alias in node.names if alias.name.startswith("graphfuse")]
        elif isinstance(node, ast.ImportFrom):
            target = resolve(module, node)
            if target.startswith("graphfuse"):
                names = [alias.name for alias in node.names]
                submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in MODULES]
                found += [(sub, node.lineno, []) for sub in submodules]
                others = [name for name in names if f"{target}.{name}" not in MODULES]
                if others:
                    found.append((target, node.lineno, others))
    return found


def test_every_module_has_a_layer():
    for module in MODULES:
        layer(module)


def test_imports_point_down():
    upward = [f"{module}:{line} imports {target} ({LAYERS[layer(target)][0]} above {LAYERS[layer(module)][0]})"
              for module in MODULES for target, line, _ in imports(module) if layer(target) > layer(module)]
    assert not upward, "\n".join(upward)


def test_no_import_cycles():
    graph = {module: sorted({target for target, _, _ in imports(module) if target in MODULES and target != module})
             for module in MODULES}
    # A package's __init__ re-exports its submodules; a submodule importing its own package's
    # __init__ would be the cycle, and is found like any other.
    state: dict[str, int] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert not cycles, "\n".join(cycles)


def test_no_private_names_across_modules():
    crossing = [f"{module}:{line} imports private {name!r} from {target}"
                for module in MODULES for target, line, names in imports(module)
                for name in names if name.startswith("_") and not name.startswith("__")]
    assert not crossing, "\n".join(crossing)


def defined_names(tree: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


PACKAGE_NAMES = set().union(*(defined_names(ast.parse(path.read_text())) for path in MODULES.values()))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_private_attributes_of_other_modules(module):
    """``obj._name``, for a private name graphfuse defines, is read only in the module that defines it
    (its own private state); PyG's private Batch bookkeeping only in the collater."""
    tree = ast.parse(MODULES[module].read_text())
    own = defined_names(tree) - (PYG_PRIVATE if module != PYG_PRIVATE_OWNER else set())
    private = {node for node in ast.walk(tree) if isinstance(node, ast.Attribute)
               and node.attr.startswith("_") and not node.attr.startswith("__")}
    foreign = sorted({f"{module}:{node.lineno} reads {ast.unparse(node)}" for node in private
                      if (node.attr in PACKAGE_NAMES or node.attr in PYG_PRIVATE) and node.attr not in own})
    assert not foreign, "\n".join(foreign)


def test_the_checker_sees_upward_imports_and_cycles(tmp_path):
    """The checks above can fail: a models -> train import is upward, a mutual import a cycle."""
    assert layer("graphfuse.train.engine") > layer("graphfuse.models.registry")
    assert layer("graphfuse.nn.flat") > layer("graphfuse.data.collate") > layer("graphfuse.data.modalities.text")
    source = "from graphfuse.checkpoint import load_weights\nfrom . import _hidden\n"
    node_imports = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)]
    assert resolve("graphfuse.models.registry", node_imports[0]) == "graphfuse.checkpoint"
    assert resolve("graphfuse.models.registry", node_imports[1]) == "graphfuse.models"
