"""The package's shape: stage folders over a kernel, imports only downward, no circles.

Edges are read with ``ast`` from every module of ``socialite_utils``: ``from .x import a`` is an edge to module
``x``; ``from . import x`` (or ``from pkg import name``) is also an edge to ``pkg/__init__``, because that is what
Python runs first. A stage's ``__init__`` is its public face and may import only its own modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "socialite_utils"

# lowest first; a module may import only from its own layer's modules or from lower layers
KERNEL = (
    "params", "runs", "metrics", "text_metrics", "registry", "tiny_tokenizer", "claims", "schema", "prompts",
    "reporting",
    "tokens", "models", "plotting", "colab",
)  # fmt: skip
STAGES = ("data", "training", "evaluation", "analysis", "baselines", "studies", "course")
TOP = ("plancheck", "published", "pipeline", "publish")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PKG.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def _imports(module: str, path: Path, mods: dict[str, Path]) -> dict[str, list[tuple[int, bool]]]:
    """{imported module -> [(line, inside a function)]} for one module of the package."""
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: dict[str, list[tuple[int, bool]]] = {}
    stack = [(node, False) for node in ast.iter_child_nodes(ast.parse(path.read_text(encoding="utf-8")))]
    while stack:
        node, in_function = stack.pop()
        in_function = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for t in targets:
            if t in mods and t != module:
                found.setdefault(t, []).append((node.lineno, in_function))
        stack.extend((child, in_function) for child in ast.iter_child_nodes(node))
    return found


def _edges(mods: dict[str, Path]) -> dict[str, dict[str, list[tuple[int, bool]]]]:
    """module -> {imported module -> [(line, inside a function)]}."""
    return {name: _imports(name, path, mods) for name, path in mods.items()}


MODS = _modules()
EDGES = _edges(MODS)


def _rank(module: str) -> tuple[int, int]:
    """(layer, position): kernel modules in KERNEL order, then each stage, then the pipeline."""
    rel = module.removeprefix("socialite_utils").lstrip(".")
    head = rel.split(".")[0]
    if rel == "":
        return (-1, 0)
    if head in KERNEL:
        return (0, KERNEL.index(head))
    if head in STAGES:
        return (1 + STAGES.index(head), 0)
    if head in TOP:
        return (1 + len(STAGES), 0)
    raise AssertionError(f"{module}: not placed in a layer (add it to KERNEL, STAGES or TOP in {__file__})")


def test_every_module_has_a_layer():
    for module in MODS:
        _rank(module)


def find_upward(edges) -> list[str]:
    out = []
    for module, targets in edges.items():
        for target, where in targets.items():
            if target == "socialite_utils":
                continue  # the root __init__ holds only the version
            src, dst = _rank(module), _rank(target)
            same_stage = src[0] == dst[0] and src[0] >= 1
            if same_stage and target.count(".") == 1 and module.count(".") == 2:
                out.append(f"{module}:{where[0][0]} imports its own stage's face {target}")
            elif not same_stage and dst > src:
                out.append(f"{module}:{where[0][0]} imports {target}, a higher layer")
    return out


def find_circles(edges) -> list[str]:
    graph = {m: sorted(t) for m, t in edges.items()}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    circles = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                circles.append(" -> ".join(path[path.index(nxt) :] + [nxt]))
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    return circles


def find_inside(edges) -> list[str]:
    return [
        f"{module}:{line} imports {target} inside a function"
        for module, targets in edges.items()
        for target, where in targets.items()
        for line, in_function in where
        if in_function
    ]


def test_imports_run_only_downward():
    assert not (found := find_upward(EDGES)), "\n".join(found)


def test_no_import_circles():
    assert not (found := find_circles(EDGES)), "\n".join(found)


def test_no_package_imports_inside_functions():
    assert not (found := find_inside(EDGES)), "\n".join(found)


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_is_a_folder_with_a_public_face(stage):
    init = PKG / stage / "__init__.py"
    assert init.is_file(), f"{stage}/ has no __init__.py"
    tree = ast.parse(init.read_text(encoding="utf-8"))
    assert ast.get_docstring(tree), f"{init}: say what the stage does"
    exported = next(
        (n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "__all__"), None
    )
    assert exported is not None and exported.elts, f"{init}: no __all__"


def test_the_checks_find_planted_faults():
    kernel_up = {"socialite_utils.runs": {"socialite_utils.evaluation.run": [(3, False)]}}
    assert find_upward(kernel_up) == [
        "socialite_utils.runs:3 imports socialite_utils.evaluation.run, a higher layer"
    ]
    stage_up = {"socialite_utils.data.assembly": {"socialite_utils.training.lora": [(9, False)]}}
    assert len(find_upward(stage_up)) == 1
    own_face = {"socialite_utils.training.lora": {"socialite_utils.training": [(5, False)]}}
    assert "own stage's face" in find_upward(own_face)[0]
    down = {"socialite_utils.studies.mixing": {"socialite_utils.training.lora": [(1, False)]}}
    assert find_upward(down) == []
    circle = {"a": {"b": [(1, False)]}, "b": {"c": [(1, False)]}, "c": {"a": [(1, False)]}}
    assert find_circles(circle) == ["a -> b -> c -> a"]
    assert find_inside({"m": {"n": [(7, True)]}}) == ["m:7 imports n inside a function"]
