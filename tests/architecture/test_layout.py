"""The code's shape: no import cycles in service/, small modules, one error renderer,
no torch on the serving side, no references to documents outside the repository."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICE = ROOT / "service"
MAX_LINES = 350


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Modules of the project this file imports at run time (TYPE_CHECKING blocks aside)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                found.update(f"{child.module}.{a.name}" for a in child.names)
            visit(child)

    visit(tree)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SERVICE.rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in files and m != name}
        for name, path in files.items()
    }


def test_no_import_cycle_inside_service() -> None:
    graph = _graph()
    assert len(graph) > 20  # the walk found the package
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    # The walk above must see "from a import b" edges, or it would pass on anything.
    (tmp_path / "m.py").write_text("from service.engine import model\nimport service.errors\n")
    found = _imports(tmp_path / "m.py")
    assert {"service.engine.model", "service.errors"} <= found


def test_no_service_module_is_over_the_size_limit() -> None:
    sizes = {p.relative_to(ROOT): len(p.read_text().splitlines()) for p in SERVICE.rglob("*.py")}
    too_big = {str(p): n for p, n in sizes.items() if n > MAX_LINES}
    assert not too_big


def test_serving_side_never_imports_torch() -> None:
    for path in [*SERVICE.rglob("*.py"), *(ROOT / "contract").rglob("*.py")]:
        assert not any(m.split(".")[0] == "torch" for m in _imports(path)), path


def _error_like(value: ast.expr) -> bool:
    """An {"error": ...} body: a dict literal or an error's to_dict() (a model's
    description may say "error": "<why it failed to load>", which is data)."""
    if isinstance(value, ast.Dict):
        return True
    return isinstance(value, ast.Call) and getattr(value.func, "attr", "") == "to_dict"


def test_errors_become_answers_in_one_place() -> None:
    # Only errors.render turns an exception into a status and body: no module builds
    # {"error": ...} bodies or changes an error's status after it is built.
    offenders = []
    for path in SERVICE.rglob("*.py"):
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            builds_body = isinstance(node, ast.Dict) and any(
                isinstance(k, ast.Constant) and k.value == "error" and _error_like(v)
                for k, v in zip(node.keys, node.values, strict=True)
            )
            sets_status = isinstance(node, ast.Attribute) and (
                node.attr in ("status", "code") and isinstance(node.ctx, ast.Store)
            )
            if builds_body or sets_status:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


def test_no_reference_to_documents_outside_the_repository() -> None:
    for path in [
        *ROOT.glob("service/**/*.py"),
        *ROOT.glob("training/**/*.py"),
        *ROOT.glob("docs/*.md"),
    ]:
        text = path.read_text()
        assert "DESIGN §" not in text and "DESIGN.md" not in text, path


def test_every_module_has_a_line_in_docs_architecture() -> None:
    # docs/architecture.md is where a new engineer looks up what a module owns.
    doc = (ROOT / "docs" / "architecture.md").read_text()
    modules = [*SERVICE.rglob("*.py"), *(ROOT / "contract").rglob("*.py")]
    missing = [
        str(p.relative_to(ROOT))
        for p in modules
        if p.name != "__init__.py"
        and not p.name.endswith("_pb2.py")  # generated (grpc_v2.proto has the line)
        and f"`{p.relative_to(ROOT)}`" not in doc
    ]
    assert len(modules) > 30 and not missing
