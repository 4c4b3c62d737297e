"""The README says what the repository holds: its code map names every module once, and its
configuration table is what devstack/config_table.py generates from the settings."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from devstack.config_table import BEGIN, END, render_table
from ivr.config import REPO_ROOT

README = REPO_ROOT / "README.md"


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = re.search(r"^##", text[start + len(heading):], flags=re.MULTILINE)
    return text[start:start + len(heading) + following.start()] if following else text[start:]


def code_map_paths(readme: str) -> list[str]:
    """Every path named in the first cell of a code map row, in order (one per module)."""
    rows = [line for line in _section(readme, "### Code map").splitlines() if line.startswith("| `")]
    return [path for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])]


def modules(root: Path = REPO_ROOT) -> set[str]:
    """The modules the code map must list: the product, the simulators, the dev tooling, the
    benchmarks, and the tests' helpers (not the tests, conftests or empty package markers)."""
    found = set()
    for top in ("ivr", "simulators", "devstack", "bench", "tests"):
        for path in (root / top).rglob("*.py"):
            relative = path.relative_to(root)
            name = relative.name
            if "__pycache__" in relative.parts or name.startswith("test_") or name == "conftest.py":
                continue
            if name == "__init__.py" and not path.read_text().strip():
                continue
            found.add(relative.as_posix())
    return found


def _row_for(module: str) -> str:
    """The row to add: the module's own docstring says what it is."""
    doc = ast.get_docstring(ast.parse((REPO_ROOT / module).read_text())) or "…"
    return f"| `{module}` | {doc.splitlines()[0]} |"


def test_code_map_lists_every_module_once() -> None:
    listed = code_map_paths(README.read_text(encoding="utf-8"))
    twice = sorted(path for path, count in Counter(listed).items() if count > 1)
    assert twice == [], f"listed more than once in the README's code map: {twice}"
    stale = sorted(path for path in listed if not (REPO_ROOT / path).exists())
    assert stale == [], f"the README's code map names what does not exist: {stale}"
    missing = sorted(modules() - set(listed))
    assert missing == [], "the README's code map lacks rows; add them:\n" + "\n".join(
        _row_for(module) for module in missing)


def test_the_code_map_check_sees_a_missing_and_a_stale_row(tmp_path: Path) -> None:
    # The walk finds a new module, and a row for a deleted one points nowhere.
    (tmp_path / "ivr" / "payments").mkdir(parents=True)
    (tmp_path / "ivr" / "payments" / "recovery.py").write_text('"""Recovery."""\n')
    (tmp_path / "ivr" / "__init__.py").write_text("")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("")
    assert modules(tmp_path) == {"ivr/payments/recovery.py"}
    readme = "### Code map\n| path | what |\n|---|---|\n| `ivr/a.py`, `ivr/a.py` | twice |\n## Next\n| `x` | y |\n"
    assert code_map_paths(readme) == ["ivr/a.py", "ivr/a.py"]


def test_configuration_table_is_the_generated_one() -> None:
    readme = README.read_text(encoding="utf-8")
    between = readme.partition(BEGIN)[2].partition(END)[0]
    assert between.strip() == render_table().strip(), \
        "README's configuration table is out of date: run `make docs`"


def test_every_setting_has_a_meaning() -> None:
    from devstack.config_table import MEANINGS, rows
    variables = [env for env, *_ in rows()]
    assert [env for env, *_, meaning in rows() if not meaning] == []
    assert sorted(set(MEANINGS) - set(variables)) == [], "meanings for settings that do not exist"
