"""How `make test` deals the suite into shards (tests/suite.py): every end-to-end file runs exactly
once, each shard ends with the leak scan over what its calls left, the shards are about even, and a
part of the suite named on the command line runs as asked."""

import signal
from pathlib import Path

from ivr.config import REPO_ROOT
from tests import suite


def _e2e_files() -> list[Path]:
    return sorted(p.relative_to(REPO_ROOT) for p in (REPO_ROOT / "tests/e2e").glob("test_*.py"))


def test_every_end_to_end_file_runs_once_and_every_shard_ends_with_the_leak_scan():
    shards = suite.plan(4)
    assert shards[0].paths == [Path("tests/unit"), Path("tests/integration")]
    e2e = shards[1:]
    assert len(e2e) == 4
    for shard in e2e:
        assert shard.paths[-1] == suite.LEAK_SCAN
        assert suite.LEAK_SCAN not in shard.paths[:-1]
    dealt = [path for shard in e2e for path in shard.paths[:-1]]
    assert sorted(dealt) == [f for f in _e2e_files() if f != suite.LEAK_SCAN]
    assert len({shard.var_dir for shard in shards}) == len(shards)  # a var directory each


def test_shards_are_dealt_even_by_measured_seconds(monkeypatch):
    weights = {"a.py": 600, "b.py": 500, "c.py": 300, "d.py": 300, "e.py": 200, "f.py": 100}
    monkeypatch.setattr(suite, "FILE_SECONDS", weights)
    groups = suite.deal([Path(name) for name in weights], 2)
    totals = sorted(sum(weights[p.as_posix()] for p in group) for group in groups)
    assert totals == [1000, 1000]
    assert all(group == sorted(group) for group in groups)  # the suite's usual order inside


def test_an_unmeasured_file_counts_as_the_default(monkeypatch):
    monkeypatch.setattr(suite, "FILE_SECONDS", {"long.py": 3 * suite.UNMEASURED_SECONDS})
    groups = suite.deal([Path("long.py"), Path("new1.py"), Path("new2.py"), Path("new3.py")], 2)
    assert sorted(map(len, groups)) == [1, 3]


def test_measured_seconds_name_only_files_that_exist():
    # A renamed or removed file would leave its weight behind and the new one unmeasured.
    assert set(suite.FILE_SECONDS) <= {f.as_posix() for f in _e2e_files()}


def test_seconds_per_file_are_read_from_the_junit_report(tmp_path):
    shard = suite.Shard("x", [])
    shard.var_dir = tmp_path
    (tmp_path / "junit.xml").write_text(
        '<testsuites><testsuite name="pytest">'
        '<testcase classname="tests.e2e.test_console" name="test_a" time="12.5"/>'
        '<testcase classname="tests.e2e.test_console" name="test_b" time="7.5"/>'
        '<testcase classname="tests.e2e.test_faults_asterisk.TestKilled" name="test_c" time="3"/>'
        '</testsuite></testsuites>')
    assert suite.file_seconds(shard) == {"tests/e2e/test_console.py": 20.0,
                                         "tests/e2e/test_faults_asterisk.py": 3.0}


def test_a_failed_shard_is_summed_up_by_its_failures_reasons_and_pytests_summary():
    output = ("tests/e2e/test_x.py .F\n"
              "=================================== FAILURES ===================================\n"
              "___________________________________ test_b ___________________________________\n"
              "    def test_b():\n>       assert leaks == []\n"
              "E       AssertionError: assert ['CVV2 found'] == []\n"
              "E         Left contains one more item\n"
              "tests/e2e/test_x.py:12: AssertionError\n"
              "----------------------------- Captured stdout call -----------------------------\n"
              "long output\n"
              "=========================== short test summary info ============================\n"
              "FAILED tests/e2e/test_x.py::test_b\n"
              "========================= 1 failed, 1 passed in 9.00s ==========================\n")
    assert suite.failure_summary(output).splitlines() == [
        "___________________________________ test_b ___________________________________",
        "E       AssertionError: assert ['CVV2 found'] == []",
        "E         Left contains one more item",
        "tests/e2e/test_x.py:12: AssertionError",
        "FAILED tests/e2e/test_x.py::test_b",
        "========================= 1 failed, 1 passed in 9.00s =========================="]
    # Without pytest's summary (a shard killed, a crash at collection): its last lines.
    assert suite.failure_summary("\n".join(f"line {n}" for n in range(100))).splitlines() == [
        f"line {n}" for n in range(70, 100)]


def test_a_named_part_of_the_suite_is_found_among_pytest_arguments():
    assert suite.named_paths(["-k", "approved", "tests/unit",
                              "tests/e2e/test_console.py::test_x", "-x"]) == [
        "tests/unit", "tests/e2e/test_console.py::test_x"]
    assert suite.named_paths(["-k", "approved", "-x"]) == []


def test_a_shards_files_are_named_as_in_any_var_directory(tmp_path):
    """The leak scan of a shard names what it read as `var/...` whatever the shard's var
    directory is called, so its checks of the places real calls leave find them."""
    from tests.leak_places import var_files
    shard_var = tmp_path / "shards" / "e2e-1"
    (shard_var / "log").mkdir(parents=True)
    (shard_var / "log" / "ivr.log").write_text("authorizing\n")
    assert [place.where for place in var_files(shard_var)] == ["var/log/ivr.log"]


def test_an_interrupted_run_interrupts_its_shards(tmp_path):
    """Each shard is a session of its own, out of reach of the terminal's Ctrl-C: the runner
    passes the interrupt on, so no shard's stack is left running."""
    import subprocess
    shard = suite.Shard("x", [])
    # As `nohup make test &` leaves it: a background job's children start with SIGINT ignored
    # (the suite's own run in the background failed here, the shard killed after the wait).
    inherited = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # Like pytest, this shard stops on SIGINT after a last word (its teardown).
        shard.process = subprocess.Popen(
            ["bash", "-c", f"trap 'echo stopped > {tmp_path}/teardown; exit 130' INT; "
                           f"touch {tmp_path}/ready; while :; do sleep 0.1; done"],
            start_new_session=True, preexec_fn=suite.interruptible)
    finally:
        signal.signal(signal.SIGINT, inherited)
    while not (tmp_path / "ready").exists():
        assert shard.process.poll() is None
    suite._interrupt([shard])
    assert shard.process.poll() == 130
    assert (tmp_path / "teardown").read_text() == "stopped\n"
