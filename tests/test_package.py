"""Package-wide promises: exports, layering, and what `import tokenrelay` costs."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

import tokenrelay

PACKAGE = Path(tokenrelay.__file__).parent

# Which top-level parts may import which (STYLE.md: arrows mean "may import", never upward).
LAYERS: dict[str, set[str]] = {
    "errors": set(),
    "sse": {"errors"},
    "client": {"sse", "errors"},
    "server": {"sse", "errors"},
    "llm": {"sse", "errors"},
    "store": {"errors"},
    # The fake LLM: deterministic scripts over the dialect codecs, served by uvicorn.
    "mock": {"llm", "sse", "errors"},
    "providers": {"llm", "mock", "sse", "errors"},
    # tokenrelay chat's session: a client of the gateway's HTTP API.
    "chat": {"client", "llm", "sse", "errors"},
    "gateway": {"providers", "server", "store", "llm", "client", "mock", "sse", "errors"},
    "cli": {
        "chat",
        "gateway",
        "providers",
        "server",
        "store",
        "llm",
        "client",
        "mock",
        "sse",
        "errors",
        "",
    },
    "": {"sse", "errors"},  # tokenrelay/__init__.py
    "__main__": {"cli"},
}
STDLIB_ONLY = {"errors", "sse", ""}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found.append((name, path))
    return found


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imports_of(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x, y: each is a module or a name
                    names.update(f"{target}.{alias.name}" for alias in node.names)
                else:
                    names.add(target)
            else:
                names.add(node.module or "")
    return names


@pytest.mark.parametrize(("module", "path"), modules(), ids=[m for m, _ in modules()])
def test_module_imports_only_from_layers_below(module: str, path: Path) -> None:
    layer = layer_of(module)
    assert layer in LAYERS, f"{module}: add its layer to LAYERS and to STYLE/ARCHITECTURE"
    for name in imports_of(module, path):
        top = name.split(".")[0]
        if top == "tokenrelay":
            target = layer_of(name) if name.count(".") else ""
            if target == "__init__":
                target = ""
            if target != layer and target in LAYERS:
                assert target in LAYERS[layer], f"{module} imports {name}: upward or sideways"
            elif target not in LAYERS:  # `from tokenrelay import x` names a layer or the root
                assert "" in LAYERS[layer] or layer == "", f"{module} imports {name}"
        elif layer in STDLIB_ONLY:
            assert top in sys.stdlib_module_names or top == "__future__", (
                f"{module} is standard-library only but imports {name}"
            )


def test_import_tokenrelay_loads_only_the_standard_library() -> None:
    code = "import sys, json, tokenrelay; print(json.dumps(sorted(sys.modules)))"
    loaded = json.loads(subprocess.check_output([sys.executable, "-c", code], text=True))
    foreign = {
        name
        for name in loaded
        if name.split(".")[0] not in sys.stdlib_module_names
        and name.split(".")[0] not in {"tokenrelay", "__main__", "_distutils_hack"}
    }
    # (_distutils_hack is setuptools' .pth shim, loaded by the interpreter before us.)
    assert not foreign


@pytest.mark.parametrize(
    "name",
    [
        "tokenrelay",
        "tokenrelay.sse",
        "tokenrelay.errors",
        "tokenrelay.client",
        "tokenrelay.server",
        "tokenrelay.llm",
        "tokenrelay.mock",
        "tokenrelay.store",
        "tokenrelay.providers",
    ],
)
def test_all_lists_exactly_the_public_names(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not isinstance(value, types.ModuleType)
        and attr not in {"annotations", "TYPE_CHECKING"}  # from __future__ and typing
        # not a class or function imported from elsewhere for local use
        and not (
            isinstance(value, type | types.FunctionType | types.BuiltinFunctionType)
            and not value.__module__.startswith("tokenrelay")
        )
    }
    public |= {"__version__"} & set(vars(module))
    assert sorted(module.__all__) == sorted(public)


def test_package_is_marked_typed() -> None:
    assert (PACKAGE / "py.typed").is_file()


def test_errors_share_one_base() -> None:
    from tokenrelay import errors

    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.TokenRelayError)


def test_the_error_tree_drawn_in_errors_py_names_every_exception() -> None:
    for name in ("client", "server", "store", "llm", "providers", "gateway"):
        importlib.import_module(f"tokenrelay.{name}")
    found: set[type] = set()
    todo: list[type] = [tokenrelay.errors.TokenRelayError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo += cls.__subclasses__()
    ours = {cls.__name__ for cls in found if cls.__module__.startswith("tokenrelay.")}
    tree = tokenrelay.errors.__doc__ or ""
    assert sorted(name for name in ours if name not in tree) == []
