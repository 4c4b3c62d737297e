"""The domain never imports the HTTP edge: only ivr/api/, the agent console's routes (an HTTP edge
of their own) and the service that wires them may."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

IVR = Path(__file__).parents[2] / "ivr"
EDGE = {IVR / "service.py", IVR / "console" / "routes.py"}


def _imported_modules(source: str, package: str) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names anywhere in ``source`` (also under
    ``if TYPE_CHECKING:`` and inside functions); relative imports resolved against ``package``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parent = parts[: len(parts) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def _imports_the_api(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m == "ivr.api" or m.startswith("ivr.api."))


def _domain_modules() -> list[Path]:
    return sorted(p for p in IVR.rglob("*.py") if (IVR / "api") not in p.parents and p not in EDGE)


def test_no_domain_module_imports_the_api() -> None:
    offenders = {}
    for path in _domain_modules():
        package = ".".join(path.relative_to(IVR.parent).parts[:-1])
        modules = _imported_modules(path.read_text(encoding="utf-8"), package)
        if _imports_the_api(modules):
            offenders[str(path.relative_to(IVR.parent))] = _imports_the_api(modules)
    assert offenders == {}
    assert IVR / "oneline" / "switch.py" in _domain_modules()
    assert not any((IVR / "api") in p.parents for p in _domain_modules())


@pytest.mark.parametrize("source", [
    "import ivr.api.errors",
    "from ivr.api.errors import APIError",
    "from ivr import api",
    "from ..api import errors",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ivr.api.keys import STORE",
    "def f():\n    from ivr.api import routes",
])
def test_the_check_sees_every_spelling_of_an_api_import(source: str) -> None:
    assert _imports_the_api(_imported_modules(source, "ivr.oneline"))


def test_the_check_lets_other_imports_pass() -> None:
    assert not _imports_the_api(_imported_modules(
        "from ivr.apiary import x\nimport ivr.orders\nfrom . import switch", "ivr.oneline"))
