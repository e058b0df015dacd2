"""The engine's modules form layers; no module imports a higher layer (分层依赖检查).

Every `import` in every module is read with `ast` (also imports inside functions), so a
late import cannot hide a back arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENGINE = ROOT / "engine"

# Lowest first. A module belongs to the layer of its longest matching prefix.
LAYERS: list[tuple[str, ...]] = [
    ("engine", "engine.errors", "engine.settings", "engine.period"),
    ("engine.model",),
    ("engine.dsl",),  # parse, then check into the typed tree
    ("engine.policy",),  # policy records and YAML reading
    ("engine.plan",),
    ("engine.run",),
    ("engine.compile",),  # function registry, compiler, build driver (read → check → compile → plan)
    ("engine.policy.registry", "engine.policy.store", "engine.policy.publish"),  # catalogue of built policies
    ("engine.explain",),
    ("engine.batch", "engine.spark"),
    ("engine.report",),  # clearing statements made from a run's results
    ("engine.api", "engine.cli", "engine.cli_view", "engine.testing", "engine.spark.submit"),
]


def layer_of(module: str) -> int:
    best, level = "", -1
    for i, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, i
    assert level >= 0, f"{module} is in no layer"
    return level


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import of an engine module in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "engine"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "engine":
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (ROOT / Path(*sub.split("."))).with_suffix(".py").exists() \
                    or (ROOT / Path(*sub.split("."))).is_dir()
                out.append((node.lineno, sub if is_module else node.module))
    return out


MODULES = sorted(ENGINE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_imports_a_higher_layer(path: Path):
    me = module_name(path)
    mine = layer_of(me)
    back = [f"line {line}: {me} (layer {mine}) imports {other} (layer {layer_of(other)})"
            for line, other in engine_imports(path) if layer_of(other) > mine]
    assert not back, "\n".join(back)


def test_the_checker_finds_a_back_arrow(tmp_path):
    """The test itself can fail: a late import of the trace inside a run function is found."""
    fake = tmp_path / "evaluate.py"
    fake.write_text("def evaluate():\n    from engine.explain.trace import build_trace\n    return build_trace\n",
                    encoding="utf-8")
    assert engine_imports(fake) == [(2, "engine.explain.trace")]
    assert layer_of("engine.explain.trace") > layer_of("engine.run.evaluate")
    assert layer_of("engine.dsl.checker") < layer_of("engine.policy.spec") < layer_of("engine.plan.plan") \
        < layer_of("engine.run.frame") < layer_of("engine.explain.trace") < layer_of("engine.api.app")
