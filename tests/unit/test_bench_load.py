"""The load benchmark's parsing and arithmetic (bench/load/measure.py, bench/load/baseline.py):
what it reports is only as right as these."""

from __future__ import annotations

from datetime import datetime

import pytest
import yaml

from bench.load import baseline
from bench.load.__main__ import _summary, shadow_velocity_rules, soak_memory, step_plan
from bench.load.api import order_body
from bench.load.measure import (CLOCK_TICKS, REFUSED_RTD, SippCounts, StepResult, api_step,
                                approved_right, baseline_reads_right, children_cpu_seconds,
                                cpu_seconds, dialer_result, nice_value,
                                knee, peak_calls_at_once, percentile, pin_to_outcome_ms,
                                process_tree, rss_kib, rtt_ms, run_queue_seconds, sipp_counts,
                                sipp_invites, steady_growth_kib, taskprocessor_alerts, udp_counters,
                                udp_socket_drops)
from ivr.api.payment_request import parse_order
from ivr.money import Money
from ivr.config import REPO_ROOT
from tests.sipp.scenario import REFUSED_COUNTER, Call, Key, write_scenario

# SIPp 3.6's -trace_stat columns, shortened to the ones read and two around them.
STAT = """\
StartTime;OutgoingCall(P);OutgoingCall(C);SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);
2026-11-27 20:52:01;2;2;0;0;0;0;
2026-11-27 20:52:46;0;5;1;4;0;1;
"""


def test_sipp_counts_come_from_the_last_rows_cumulative_columns():
    assert sipp_counts(STAT) == (5, 4, 1, 0)  # no refusal: SIPp writes no column for the counter


# A step past VOICEPAY_MAX_PAYMENT_CALLS: SIPp counts a refused call successful (its scenario
# reached the end by the 503 branch) and in the scenario's own counter.
STAT_REFUSED = f"""\
StartTime;OutgoingCall(P);OutgoingCall(C);SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);{REFUSED_COUNTER}(P);{REFUSED_COUNTER}(C);
2026-11-27 20:52:01;2;2;0;0;0;0;0;0;
2026-11-27 20:52:46;0;10;1;9;0;1;2;6;
"""


def test_refused_calls_are_counted_apart_from_completed_and_failed_ones():
    counts = sipp_counts(STAT_REFUSED)
    assert counts == SippCounts(placed=10, completed=3, failed=1, refused=6)


def test_the_refused_counter_is_the_one_the_scenario_increments(tmp_path):
    scenario = write_scenario(Call("refusable", "8000", [Key("1", 100)], refusable=True), tmp_path)
    xml = scenario.read_text()
    assert f'<recv response="503" optional="true" next="refused" counter="{REFUSED_COUNTER}"' \
           f' rtd="{REFUSED_RTD}"/>' in xml
    assert xml.index('<label id="refused"/>') > xml.index('<recv request="BYE"')
    plain = write_scenario(Call("plain", "8000", [Key("1", 100)]), tmp_path).read_text()
    assert "503" not in plain and "label" not in plain


def test_sipp_counts_refuse_a_file_without_data():
    with pytest.raises(ValueError, match="no data row"):
        sipp_counts(STAT.splitlines()[0])


def test_rtt_samples_skip_the_header_and_keep_milliseconds():
    text = "Date_ms;response_time_ms;rtd_no\n1764276721000.5;4.25;1\n1764276722000.1;52.000;1\n"
    assert rtt_ms(text) == [4.25, 52.0]


def test_answer_and_refusal_times_are_told_apart_by_their_measure_name():
    text = ("Date_ms;response_time_ms;rtd_no\n1764276721000.5;4.25;1\n"
            f"1764276721001.5;1.50;{REFUSED_RTD}\n1764276722000.1;52.000;1\n")
    assert rtt_ms(text) == [4.25, 52.0]
    assert rtt_ms(text, REFUSED_RTD) == [1.5]


def test_percentile_is_nearest_rank():
    samples = [float(n) for n in range(100, 0, -1)]  # 100 .. 1, unordered on purpose
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_the_nice_value_is_field_19_after_a_command_name_with_spaces_and_brackets():
    line = "42 ((a) b)) S 1 42 42 0 -1 4194304 100 0 0 0 30 10 0 0 15 -5 1"
    assert nice_value(line) == -5


def test_cpu_seconds_count_after_a_command_name_with_spaces_and_brackets():
    # Fields 14 (utime) and 15 (stime) of proc(5); the name "(a) b)" would shift a naive split.
    line = f"42 ((a) b)) S 1 42 42 0 -1 4194304 100 0 0 0 {3 * CLOCK_TICKS} {CLOCK_TICKS} 0 0 20 0 1"
    assert cpu_seconds(line) == pytest.approx(4.0)


def test_process_tree_walks_every_tasks_children(tmp_path):
    # 10 -> 11 (from its second thread) -> 12; 13 belongs to nobody here.
    for pid, tid, children in ((10, 10, ""), (10, 15, "11"), (11, 11, "12"), (12, 12, ""),
                               (13, 13, "")):
        task = tmp_path / str(pid) / "task" / str(tid)
        task.mkdir(parents=True)
        (task / "children").write_text(children)
    assert sorted(process_tree(10, tmp_path)) == [10, 11, 12]


def test_a_reaped_childs_cpu_is_counted_once_it_has_ended():
    # How a step counts SIPp's CPU: the child's seconds appear when it is reaped.
    import subprocess
    import sys
    before = children_cpu_seconds()
    subprocess.run([sys.executable, "-c",
                    "import time\nend = time.process_time() + 0.3\n"
                    "while time.process_time() < end: pass"], check=True)
    assert children_cpu_seconds() - before >= 0.3


def test_run_queue_wait_is_the_second_schedstat_field_in_nanoseconds():
    assert run_queue_seconds("7012345678 1500000000 8812\n") == pytest.approx(1.5)


def test_resident_memory_is_read_in_kib_and_is_zero_without_a_line():
    assert rss_kib("Name:\tasterisk\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\nThreads:\t80\n") == 123456
    assert rss_kib("Name:\tkworker\nState:\tI (idle)\n") == 0


SNMP = """\
Ip: Forwarding DefaultTTL
Ip: 1 64
Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors
Udp: 1000 3 250 900 240 0
UdpLite: InDatagrams NoPorts
UdpLite: 0 0
"""


def test_udp_counters_are_read_by_name():
    counters = udp_counters(SNMP)
    assert counters["RcvbufErrors"] == 240 and counters["InErrors"] == 250


def test_udp_counters_refuse_a_file_without_udp():
    with pytest.raises(ValueError):
        udp_counters("Ip: a\nIp: 1\n")


PROC_NET_UDP = """\
   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:13C4 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 1 2 0000000000000000 17
  2: 0200007F:13C4 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 2 2 0000000000000000 5
  3: 0100007F:3E80 00000000:0000 07 00000000 00000000 00:00000000 00000000     0        0 3 2 0000000000000000 9000
"""


def test_socket_drops_are_those_of_the_one_address_and_port():
    assert udp_socket_drops(PROC_NET_UDP, "127.0.0.1", 5060) == 17
    assert udp_socket_drops(PROC_NET_UDP, "127.0.0.2", 5060) == 5
    assert udp_socket_drops(PROC_NET_UDP, "127.0.0.1", 5061) == 0


def _payment(rrn: str, amount: str = "5000", status: str = "approved") -> dict[str, str]:
    return {"status": status, "amount_minor": amount, "rrn": rrn}


def _charge(rrn: str, amount: int = 5000, **extra) -> dict:
    return {"mti": "0200", "response_code": "00", "amount": amount, "rrn": rrn, **extra}


def test_a_payment_is_right_only_when_the_acquirer_charged_the_same_amount_under_its_rrn():
    journal = [_charge("A"), _charge("B", amount=10000), _charge("C", reversed=True),
               {**_charge("D"), "response_code": "51"}, _charge("E")]
    payments = [_payment("A"), _payment("B"), _payment("C"), _payment("D"),
                _payment("E", amount="10000"), _payment("F"), _payment("", status="approved"),
                _payment("A", status="failed")]
    assert approved_right(payments, journal, 5000) == 1  # only A


def test_a_duplicate_answer_is_no_second_charge():
    assert approved_right([_payment("A")], [_charge("A", duplicate=True)], 5000) == 0


def test_baseline_reads_count_each_call_once_and_only_with_every_answer_right():
    expected = ("13800138001", "1", "9000000000000001", "246802")
    marker = baseline.MARKER
    lines = [
        f"[2026-11-27 20:52:40.123] NOTICE[77][C-1] Ext. 8090:9 @ x: {marker}:1.1:" + ":".join(expected),
        f"[2026-11-27 20:52:40.123] NOTICE[77][C-1] Ext. 8090:9 @ x: {marker}:1.1:" + ":".join(expected),
        f"[...] NOTICE {marker}:1.2:13800138001:1:900000000000000:246802",  # a digit lost
        f"[...] NOTICE {marker}:1.3:13800138001:1:9000000000000001:",  # no PIN read
        "[...] NOTICE something else 1.4",
    ]
    assert baseline_reads_right(lines, marker, expected) == 1


def _step(rate: float, failed: int = 0, right: int | None = None, placed: int = 10,
          refused: int = 0) -> StepResult:
    completed = placed - failed - refused
    return StepResult("ivr", rate, placed, completed, failed, refused,
                      completed if right is None else right, None, None, None, None, {}, 0, 0, {})


def test_the_knee_is_the_last_clean_rate_before_the_first_unclean_one():
    steps = [_step(8), _step(2), _step(4), _step(12), _step(10, failed=1)]
    assert knee(steps) == 8  # 12 was clean, but above a failure: luck, not capacity


def test_a_step_with_a_wrong_payment_is_not_clean_even_with_every_call_completed():
    assert knee([_step(2), _step(4, right=9)]) == 2


def test_no_knee_when_the_lowest_rate_already_failed():
    assert knee([_step(2, failed=3), _step(4)]) is None
    assert knee([]) is None


def test_a_step_with_refused_calls_is_past_the_knee_though_nothing_failed():
    assert knee([_step(2), _step(4, refused=3), _step(6)]) == 2


def test_a_step_that_placed_nothing_is_not_clean():
    assert not _step(2, placed=0).clean


def test_the_bench_rules_shadow_every_velocity_rule_and_nothing_else():
    shipped = (REPO_ROOT / "ivr" / "risk" / "rules.yaml").read_text(encoding="utf-8")
    bench = {rule["name"]: rule for rule in yaml.safe_load(shadow_velocity_rules(shipped))["rules"]}
    original = {rule["name"]: rule for rule in yaml.safe_load(shipped)["rules"]}
    assert bench.keys() == original.keys()
    for name, rule in bench.items():
        counts = any(word in rule["when"] for word in ("_10m", "_1h", "_24h", "_7d"))
        assert rule.get("shadow", False) is (counts or original[name].get("shadow", False)), name
        assert {k: v for k, v in rule.items() if k != "shadow"} == \
            {k: v for k, v in original[name].items() if k != "shadow"}
    assert bench["card_many_payments"]["shadow"] and not bench["over_merchant_limit"].get("shadow")


def test_the_baseline_is_added_under_its_own_number_with_its_answers_logged():
    commands = baseline.cli_commands()
    assert commands[-1] == (f"dialplan add extension {baseline.NUMBER},1,Goto({baseline.CONTEXT},"
                            f"{baseline.NUMBER},1) into from-cardholder replace")
    priorities = [int(c.split()[3].split(",")[1]) for c in commands[:-1]]
    assert priorities == list(range(1, len(commands)))
    assert all(" " not in c.split(" ", 3)[3].rsplit(" into ", 1)[0] for c in commands), \
        "the Asterisk CLI splits an application's arguments at spaces"
    assert any(f"Log(NOTICE,{baseline.MARKER}:${{UNIQUEID}}:" in c for c in commands)
    assert commands[-2].endswith("Hangup() into voicepay-bench-baseline replace")


def test_both_targets_are_keyed_alike_and_at_a_persons_pace():
    from bench.load.steps import REACTION_MS, targets
    waits = {name: [key.wait_ms for key in target.call.steps] for name, target in targets().items()}
    assert waits["ivr"] == waits["baseline"]
    assert len(waits["ivr"]) == 4 and min(waits["ivr"]) >= REACTION_MS


def test_peak_calls_at_once_is_the_largest_current_call_count():
    stat = ("StartTime;TotalCallCreated;CurrentCall;SuccessfulCall(C)\n"
            "2026-11-28 00:20:01;40;40;0\n2026-11-28 00:20:06;240;231;9\n"
            "2026-11-28 00:20:11;440;180;260\n")
    assert peak_calls_at_once(stat) == 231


def test_pin_to_outcome_pairs_each_payments_last_pin_with_its_outcome():
    lines = [
        "2026-11-28 00:14:22.135 INFO ivr.paying.pin_entry: call 1.20 payment pay_a: PIN entered "
        "(6 digits), authorizing",
        "2026-11-28 00:14:23.000 INFO ivr.paying.pin_entry: call 1.21 payment pay_b: PIN entered "
        "(6 digits), authorizing",
        "2026-11-28 00:14:24.000 INFO ivr.paying.pin_entry: call 1.21 payment pay_b: PIN entered "
        "(6 digits), authorizing",  # asked again: counts from here
        "2026-11-28 00:14:26.698 INFO ivr.paying.pin_entry: call 1.20 payment pay_a: approved "
        "(00 Approved)",
        "2026-11-28 00:14:25.500 INFO ivr.paying.pin_entry: call 1.21 payment pay_b: declined "
        "(51 Not sufficient funds)",
        "2026-11-28 00:14:27.000 INFO ivr.paying.pin_entry: call 1.22 payment pay_c: approved "
        "(00 Approved)",  # no PIN line seen: not a sample
    ]
    assert pin_to_outcome_ms(lines) == pytest.approx([4563.0, 1500.0])


# --- the merchant API and the dialer (bench/load/api.py, bench/load/dialer.py) ----------------

def test_an_api_step_counts_every_status_and_times_only_the_expected_answers():
    samples = [(201, 10.0), (201, 30.0), (201, 20.0), (429, 1.0), (0, 30000.0), (201, 40.0)]
    step = api_step("orders", 4, 201, samples, 2.0, {"ivr": 10.0, "redis": 1.0},
                    {"ivr": 11.5, "redis": 1.25}, {"ivr": 3.0}, {"ivr": 3.2})
    assert (step.answers, step.ok, step.ok_per_s) == (6, 4, 2.0)
    assert (step.p50_ms, step.p99_ms) == (20.0, 40.0)  # the 429 and the dead request left out
    assert step.statuses == {"0": 1, "201": 4, "429": 1}
    assert step.cpu_percent == pytest.approx({"ivr": 75.0, "redis": 12.5})
    assert step.run_queue_percent == pytest.approx({"ivr": 10.0})


def test_an_api_step_without_an_expected_answer_has_no_latency():
    step = api_step("get", 1, 200, [(503, 2.0)], 1.0, {"ivr": 0.0}, {"ivr": 0.5}, {}, {})
    assert (step.ok, step.ok_per_s, step.p50_ms, step.p99_ms) == (0, 0.0, None, None)


# SIPp 3.6's -trace_msg, shortened: an INVITE received, the 200 sent, a retransmitted INVITE.
TRACE = """\
----------------------------------------------- 2026-11-28\t00:20:01.250000\t1764289201.250000
UDP message received [812] bytes :

INVITE sip:13700100001@127.0.0.1:5071 SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;rport;branch=z9hG4bKPj1
To: <sip:13700100001@127.0.0.1>

----------------------------------------------- 2026-11-28\t00:20:01.251000\t1764289201.251000
UDP message sent (400 bytes):

SIP/2.0 200 OK
CSeq: 1 INVITE

----------------------------------------------- 2026-11-28\t00:20:01.300000\t1764289201.300000
UDP message received [812] bytes :

INVITE sip:13700100002@127.0.0.1:5071 SIP/2.0
CSeq: 1 INVITE

----------------------------------------------- 2026-11-28\t00:20:01.900000\t1764289201.900000
UDP message received [812] bytes :

INVITE sip:13700100001@127.0.0.1:5071 SIP/2.0
"""


def test_sipp_invites_are_the_received_invites_with_their_number_and_time():
    assert sipp_invites(TRACE) == [(1764289201.25, "13700100001"), (1764289201.3, "13700100002"),
                                   (1764289201.9, "13700100001")]


def test_a_trace_without_unix_seconds_is_read_in_local_time():
    head = "----------------------------------------------- 2026-11-28\t00:20:01.250000\n"
    text = head + "UDP message received [812] bytes :\n\nINVITE sip:13700100001@127.0.0.1 SIP/2.0\n"
    expected = datetime(2026, 11, 28, 0, 20, 1, 250000).timestamp()
    assert sipp_invites(text) == [(expected, "13700100001")]


def test_the_dialer_counts_each_number_once_from_its_first_invite():
    sent = {"a": 100.0, "b": 100.1, "c": 100.2}
    released = {"a": 100.05, "b": 100.5, "c": 100.6}
    invites = [(101.0, "a"), (100.3, "b"), (101.5, "a"), (102.0, "stranger")]  # c never rang
    result = dialer_result(sent, released, invites, {"ivr": 1.0}, {"ivr": 1.2},
                           {"order 503": 1, "approval 200": 3})
    assert (result.released, result.invited) == (3, 2)
    assert result.outcomes == {"approval 200": 3, "order 503": 1}
    assert result.releasing_s == pytest.approx(0.6)
    assert result.dialling_s == pytest.approx(1.0)  # the first release sent to a's first INVITE
    assert result.originates_per_s == pytest.approx(2.0)
    assert result.due_invite_p50_ms == pytest.approx(200.0)   # b: 100.1 -> 100.3
    assert result.due_invite_p99_ms == pytest.approx(1000.0)  # a: 100.0 -> 101.0
    assert result.cpu_ms_per_callback == pytest.approx({"ivr": 100.0})


def test_a_burst_that_rang_nobody_reports_zero_originates():
    result = dialer_result({"a": 5.0}, {"a": 5.1}, [], {"ivr": 0.0}, {"ivr": 0.0},
                           {"approval 200": 1})
    assert (result.invited, result.originates_per_s, result.due_invite_p50_ms) == (0, 0.0, None)


def test_the_api_orders_are_well_formed_callback_orders():
    order = parse_order(order_body("B1N0000001", "13912300001"), maximum=Money.parse("50000.00"))
    assert (order.mode, order.amount, order.mobile) == ("callback", Money.parse("1.00"),
                                                        "13912300001")


def test_the_ivr_session_limit_the_bench_sets_stays_above_asterisks():
    from bench.load.__main__ import ivr_sessions_above
    assert ivr_sessions_above(3000) == 3750
    assert all(ivr_sessions_above(n) > n for n in (1, 2, 20, 240))


def _step_with_timeline(timeline) -> StepResult:
    return StepResult(target="ivr", rate=6, placed=1, completed=1, failed=0, refused=0, right=1,
                      invite_200_p50_ms=4, invite_200_p99_ms=8, invite_503_p50_ms=None,
                      invite_503_p99_ms=None, cpu_ms_per_call={}, udp_rcvbuf_errors=0,
                      sip_socket_drops=0, rss_growth_kib={}, rss_timeline=timeline)


def test_a_soaks_memory_growth_is_judged_once_the_calls_are_steady():
    kib = lambda a, i, r, q: {"asterisk": a, "ivr": i, "redis": r, "acquirer": q}  # noqa: E731
    timeline = [(0.0, kib(100_000, 50_000, 8_000, 30_000)),
                (240.0, kib(140_000, 60_000, 9_000, 31_000)),   # calls still rising
                (300.0, kib(141_000, 60_500, 9_100, 31_000)),
                (1800.0, kib(142_024, 60_500, 11_148, 30_488))]
    assert steady_growth_kib(timeline, 300) == {"asterisk": 1024, "ivr": 0, "redis": 2048,
                                                "acquirer": -512}
    assert steady_growth_kib(timeline[:3], 300) is None  # one steady sample: nothing to judge
    report = soak_memory(_step_with_timeline(timeline))
    assert "    30     138.7     59.1     10.9     29.8" in report
    assert report.endswith("steady growth, minute 5 to the end: asterisk +1.0 MiB, ivr +0.0 MiB, "
                           "redis +2.0 MiB, acquirer -0.5 MiB")
    assert soak_memory(_step_with_timeline(timeline[:2])).endswith(
        "too short a soak (samples from minute 5 on)")


def test_the_plan_places_the_baseline_before_the_ivr_at_each_rate_and_only_the_targets_named():
    assert step_plan("8,4", "baseline,ivr", 80) == [
        ("baseline", 4, 80, None), ("ivr", 4, 80, None), ("baseline", 8, 80, None),
        ("ivr", 8, 80, None)]
    assert step_plan("16", "ivr", 150) == [("ivr", 16, 150, None)]
    # Held steps after the rate steps, filled a quarter above their turnover (780 / 78 s = 10/s)
    assert step_plan("", "baseline,ivr", 80, "780") == [
        ("baseline", 13, 80, 780), ("ivr", 13, 80, 780)]
    with pytest.raises(SystemExit, match="choose from baseline, ivr"):
        step_plan("16", "ivr,dialplan", 80)
    with pytest.raises(SystemExit):
        step_plan("16", " , ", 80)


def test_taskprocessor_alerts_are_counted_by_queue_without_the_instance_suffix():
    lines = [
        "[2026-11-28 07:29:33.727] WARNING[1418][C-00000547] taskprocessor.c: Taskprocessor "
        "'stasis/m:manager:core-0000000c' queue reached 3000 scheduled tasks (high water mark: 3000).",
        "[2026-11-28 07:29:35.768] WARNING[1435][C-00000558] taskprocessor.c: Taskprocessor "
        "'stasis/m:manager:core-0000000c' queue reached 3000 scheduled tasks (high water mark: "
        "3000) again.",
        "[2026-11-28 07:29:36.001] WARNING[1500] taskprocessor.c: Taskprocessor "
        "'pjsip/distributor-00000001' queue reached 500 scheduled tasks (high water mark: 500).",
        "[2026-11-28 07:29:37.000] VERBOSE[1501][C-00000559] pbx.c: Executing [8000@x:1] NoOp",
    ]
    assert taskprocessor_alerts(lines) == {"stasis/m:manager:core": 2, "pjsip/distributor": 1}
    assert taskprocessor_alerts(lines[3:]) == {}


def test_a_held_step_keeps_that_many_calls_up_and_places_enough_to_last_its_duration(tmp_path):
    from bench.load.steps import sipp_argv
    argv = sipp_argv(tmp_path, tmp_path / "s.xml", 13, 80, held=780)
    assert argv[argv.index("-l") + 1] == "780"  # a new call only as one ends
    assert argv[argv.index("-m") + 1] == str(780 + 800)  # full, then 80 s of turnover
    assert argv[argv.index("-r") + 1] == "13"
    rate_argv = sipp_argv(tmp_path, tmp_path / "s.xml", 12, 80)
    assert rate_argv[rate_argv.index("-m") + 1] == "960"
    assert int(rate_argv[rate_argv.index("-l") + 1]) > 12 * 80  # never the rate step's limit


def test_the_held_knee_and_its_ratio_come_from_the_held_steps_only():
    def step(target, rate, held, failed=0):
        return StepResult(target=target, rate=rate, held=held, placed=100, completed=100 - failed,
                          failed=failed, refused=0, right=100 - failed, invite_200_p50_ms=None,
                          invite_200_p99_ms=None, invite_503_p50_ms=None, invite_503_p99_ms=None,
                          cpu_ms_per_call={}, udp_rcvbuf_errors=0, sip_socket_drops=0,
                          rss_growth_kib={})
    results = [step("baseline", 12, None), step("ivr", 12, None, failed=1),
               step("baseline", 10, 700), step("ivr", 10, 700),
               step("baseline", 12, 800), step("ivr", 12, 800, failed=2)]
    summary = _summary(results)
    assert (summary["knee_ivr"], summary["knee_baseline"], summary["ratio"]) == (None, 12, None)
    assert (summary["knee_ivr_held"], summary["knee_baseline_held"]) == (700, 800)
    assert summary["ratio_held"] == pytest.approx(700 / 800)


def test_a_regular_caller_keys_during_the_questions_and_the_pin_after_its_question():
    """--pace regular: the shipped QA call's schedule (the issue's 39-s call) for everything
    the IVR asks nobody about first; the PIN, after the payment is recorded and risk asked, a
    second after its whole question, as a person keys it."""
    from bench.load.steps import REACTION_MS, REGULAR_CALL_LENGTH_S, targets
    from tests.sipp import selfservice_calls
    person, regular = targets("person"), targets("regular")
    waits = {name: [key.wait_ms for key in target.call.steps] for name, target in regular.items()}
    assert waits["ivr"] == waits["baseline"]
    qa = [key.wait_ms for key in selfservice_calls.approved().steps]
    assert waits["ivr"][:3] == qa[:3]
    assert waits["ivr"][3] == person["ivr"].call.steps[3].wait_ms
    assert waits["ivr"][3] >= selfservice_calls.clock.ms("enter_pin") + REACTION_MS
    assert [key.digits for key in regular["ivr"].call.steps] == \
        [key.digits for key in person["ivr"].call.steps]
    assert {t.call_length_s for t in regular.values()} == {REGULAR_CALL_LENGTH_S}
    assert {t.call_length_s for t in person.values()} == {78}
    # Held steps turn over with the pace's call: 500 calls of 50 s end 10 a second.
    assert step_plan("", "ivr", 80, "500", "regular") == [("ivr", 13, 80, 500)]


def test_each_run_starts_its_stack_from_an_empty_directory(tmp_path):
    from bench.load.__main__ import fresh_stack_dir
    left = tmp_path / "bench-load" / "stack" / "redis" / "appendonly.aof"
    left.parent.mkdir(parents=True)
    left.write_text("an earlier run's payments")
    stack_dir = fresh_stack_dir(tmp_path)
    assert stack_dir == tmp_path / "bench-load" / "stack"
    assert not stack_dir.exists()  # the stack's prepare makes it again, empty
    assert (tmp_path / "bench-load").is_dir()  # results.json's directory stays
