"""The package's shape: imports point one way, down the layers, and form no circle.

cli, examples -> public shims and integrations -> report -> planning -> training -> core -> export
-> meters | intensity | records -> units, _version. Read from the source with ``ast`` (imports at
any depth, function-level ones included; ``if TYPE_CHECKING:`` blocks are left out, as they are
not imported at run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "co2cb"

# (prefix, layer): the most specific prefix wins; a lower number is a higher layer.
LAYERS: tuple[tuple[str, int], ...] = (
    ("co2cb.__main__", 0),
    ("co2cb.cli", 0),
    ("co2cb.examples", 0),
    ("co2cb", 1),  # the package itself and its public shims (lightning, hf, keras, run_folder, compare)
    ("co2cb.integrations", 1),
    ("co2cb.report", 2),
    ("co2cb.planning", 3),
    ("co2cb.training", 4),
    ("co2cb.core", 5),
    ("co2cb.export", 6),
    ("co2cb.meters", 7),
    ("co2cb.intensity", 7),
    ("co2cb.records", 7),
    ("co2cb.units", 8),
    ("co2cb._version", 8),
)
SIBLINGS_APART = (
    "co2cb.meters",
    "co2cb.intensity",
    "co2cb.records",
)  # one layer, three packages that ignore each other
MAX_LINES = 450
MAX_LOOSE_MODULES = 10
MAX_ADAPTER_LINES = 300  # an adapter translates hooks; plumbing with a job of its own has its own module
ADAPTERS = ("lightning", "hf", "keras")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    best = max((p for p, _ in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return dict(LAYERS)[best]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports(path: Path) -> set[str]:
    """The co2cb modules a file imports (``from co2cb.x import y`` counts as ``co2cb.x.y`` where that is a module)."""
    found: set[str] = set()
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rsplit(".", 1)[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("co2cb"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base]).strip(".")
            if base.startswith("co2cb"):
                submodules = [
                    base + "." + a.name
                    for a in node.names
                    if (PACKAGE.parent / (base + "." + a.name).replace(".", "/")).with_suffix(".py").exists()
                ]
                found.update(submodules)
                if len(submodules) < len(node.names) or not me.startswith(base + "."):
                    found.add(base)  # a name from the package itself (inside it, a sibling module is no arrow to it)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(me)
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_imports_point_down_the_layers() -> None:
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if target == "co2cb" and module.startswith("co2cb."):
                wrong.append(f"{module} imports the package root co2cb (import from the module itself)")
            elif layer(target) < layer(module):
                wrong.append(f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})")
            elif layer(target) == layer(module) == layer(SIBLINGS_APART[0]):
                mine = next(p for p in SIBLINGS_APART if module.startswith(p))
                if not target.startswith(mine):
                    wrong.append(f"{module} imports its sibling package's {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_import_cycles() -> None:
    g = graph()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(g.get(node, ())):
            if nxt not in g:
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node)
    # a package importing its own submodules (its __init__ re-exporting them) is no circle
    real = [c for c in cycles if not all(x == c[0] or x.startswith(c[0] + ".") for x in c)]
    assert not real, "\n".join(" -> ".join(c) for c in real)


def test_modules_are_small_and_few_are_loose() -> None:
    big = {
        module_name(p): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(loose) <= MAX_LOOSE_MODULES, loose


def test_each_adapter_is_thin() -> None:
    sizes = {a: len((PACKAGE / "integrations" / f"{a}.py").read_text(encoding="utf-8").splitlines()) for a in ADAPTERS}
    assert all(n <= MAX_ADAPTER_LINES for n in sizes.values()), f"adapters over {MAX_ADAPTER_LINES} lines: {sizes}"


def test_core_knows_no_framework() -> None:
    frameworks = ("torch", "lightning", "pytorch_lightning", "transformers", "keras", "tensorflow", "jax")
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        module = module_name(path)
        if layer(module) <= 1 and not module.startswith("co2cb.__init__") and module != "co2cb":
            continue  # adapters, shims and the CLI may import a framework
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and not node.level
                else []
            )
            wrong += [f"{module}: {n}" for n in names if n.split(".")[0] in frameworks]
    assert not wrong, wrong
