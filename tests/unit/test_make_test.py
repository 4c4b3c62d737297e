"""`make test` scans the suite's output for leaks whether pytest passed or failed, and fails if
either did. Run with a stand-in for the venv's python (pytest passes or fails as told, printing
what it is told), the real leak scan, and no set-up steps (-o deps -o venv)."""

import subprocess
import sys

from ivr.config import REPO_ROOT
from simulators.acquirer.testcards import find_test_card

STUB = """#!/bin/sh
case "$2" in
  devstack.stack) exit 0 ;;
  tests.suite) cat "$STUB_OUTPUT"; exit "$STUB_STATUS" ;;
  *) PYTHONPATH="$REPO" exec "$REAL_PY" "$@" ;;
esac
"""


def _make_test(tmp_path, *, pytest_status: int, output: str) -> tuple[int, bool, bool]:
    """(make's exit status, did the leak scan run, did it report a leak)."""
    stub = tmp_path / "python"
    stub.write_text(STUB)
    stub.chmod(0o755)
    (tmp_path / "out.txt").write_text(output)
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": "/usr/bin:/bin", "STUB_OUTPUT": str(tmp_path / "out.txt"),
           "STUB_STATUS": str(pytest_status), "REPO": str(REPO_ROOT), "REAL_PY": sys.executable}
    result = subprocess.run(["make", "-s", "-f", str(REPO_ROOT / "Makefile"), "-o", "deps", "-o", "venv",
                             "test", f"PY={stub}"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=120)
    return result.returncode, "files scanned" in result.stdout, "LEAK: card number" in result.stdout


def test_a_failed_run_is_still_scanned_and_fails(tmp_path):
    status, scanned, leaked = _make_test(tmp_path, pytest_status=1, output="1 failed\n")
    assert (status != 0, scanned, leaked) == (True, True, False)


def test_a_leak_in_the_output_of_a_passing_run_fails(tmp_path):
    pan = find_test_card("approve").pan
    status, scanned, leaked = _make_test(
        tmp_path, pytest_status=0, output=f"passed, but printed {pan[:8]} {pan[8:]}\n")
    assert (status != 0, scanned, leaked) == (True, True, True)


def test_a_clean_passing_run_passes(tmp_path):
    status, scanned, leaked = _make_test(tmp_path, pytest_status=0, output="3 passed\n")
    assert (status, scanned, leaked) == (0, True, False)


def test_no_end_to_end_test_spells_a_test_secret():
    """A failing test prints its source (docstring, nearby lines) and `make test` scans that output
    for every test card's data and ID number: so an end-to-end test, the kind most likely to fail
    on a machine's quirk, names its card or identity (find_test_card, find_test_identity) and
    never spells a number, or its failure report would itself fail the run as a leak."""
    from pathlib import Path

    from tests.leak_secrets import all_secrets
    spelled = sorted({f"{path.name}: {secret.kind} of {secret.owner!r}"
                      for path in (Path(REPO_ROOT) / "tests" / "e2e").glob("*.py")
                      for secret in all_secrets([])
                      if len(secret.value) >= 4 and secret.value in path.read_text()})
    assert spelled == []
