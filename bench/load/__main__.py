"""`make bench-load`: how many self-service payment calls one machine carries, against a
dialplan-only baseline of the same call in the same Asterisk (figures, not assertions).

    python -m bench.load [--rates 4,8] [--duration 80] [--chart docs/bench-load.png]
                         [--max-payment-calls N]
    python -m bench.load --rates 16 --targets ivr --duration 150 --max-payment-calls 700
                                                           # past the knee, limit set
    python -m bench.load --held 700,800 [--duration 80]    # calls kept up at once
    python -m bench.load --pace regular --rates 20         # callers who know the line (50-s call)
    python -m bench.load --soak 10 [--soak-minutes 30]     # one long step of the IVR
    python -m bench.load --api-only [--api-concurrency 1,4,16,64] [--api-seconds 8]

Starts the whole stack itself on its fixed ports (run it alone, or in a network namespace of
its own: `unshare -n`), adds the baseline (bench/load/baseline.py) to Asterisk over the CLI,
then at each rate places calls with SIPp for --duration seconds, the baseline then the IVR, and
prints a row per step (bench/load/steps.py). The knee is the highest rate at which every call
completed and every payment (or baseline read) was right; the ratio is the IVR's knee over the
baseline's. Results go to var/bench-load/results.json and the chart to --chart.

Past VOICEPAY_MAX_PAYMENT_CALLS, or while the machine's CPUs are busier than
VOICEPAY_ADMIT_CPU_BUSY_PERCENT (--admit-cpu-busy), the IVR's line refuses new calls with SIP 503
before answering them (dialplan/admission.conf); SIPp takes a 503 as a clean ending and counts
those calls as "refused", apart from failed ones, with how fast the 503 came. A step with a
refusal is not clean: the knee is where every call was carried.

After the calls (or alone, with --api-only): the merchant API's signed orders and reads per
second (bench/load/api.py) and the callback dialer's originates per second (bench/load/dialer.py).
The API's rate limits (1,200 requests a minute per merchant, 3,000 per client address, 600 on
the operator's API) would stop one merchant's load generator at 20 a second, so the benchmark
raises those budgets through their settings: the limiter still runs for every request, only out
of reach.

Every call pays with the same test card from the same caller: the risk rules that count
payments per card, mobile, merchant or source (velocity windows) would stop a load test after a
few calls, so the benchmark runs the shipped rules with those made shadow rules: still evaluated
(the same work for Redis and the ivr service), never counted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import re
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import yaml

from bench.load import baseline
from bench.load.api import API_HEADER, api_row, run_api_steps
from bench.load.dialer import DIAL_PATTERN, dialer_row, run_dialer
from bench.load.measure import StepResult, knee, steady_growth_kib
from bench.load.steps import COMPONENTS, PACES, Probes, held_fill_rate, run_step, targets
from devstack.stack import Stack, establish_seed_merchants
from ivr.config import REPO_ROOT, Settings, load_settings
from simulators.acquirer.server import journal_path

__all__ = ["main", "ivr_sessions_above", "shadow_velocity_rules", "step_plan"]

# A rate-limit budget (requests a minute) no load generator reaches.
_OUT_OF_REACH = 10_000_000
# The counters of ivr/risk/velocity.py, by their window suffix.
_VELOCITY = re.compile(r"\b\w+_(10m|1h|24h|7d)\b")


def shadow_velocity_rules(rules_yaml: str) -> str:
    """The rules file with every rule over a velocity counter made a shadow rule."""
    rules = yaml.safe_load(rules_yaml)
    for rule in rules["rules"]:
        if _VELOCITY.search(rule["when"]):
            rule["shadow"] = True
    return yaml.safe_dump(rules, sort_keys=False, allow_unicode=True)


def fresh_stack_dir(var_dir: Path) -> Path:
    """Where this run's stack keeps everything (Redis's data, keys, logs, Asterisk's state),
    emptied first. Runs shared var/ once: every call pays with one test card, so its day of
    payments (the per-card amount a payment's risk check sums) and the data the service's sweeps
    go over grew run after run, and so did the ivr's and Redis's CPU a call (22 and 17 ms at one
    run, 60 and 26 at 8 calls/s a few runs later), enough to close the CPU guard at 8 calls/s."""
    stack_dir = var_dir / "bench-load" / "stack"
    shutil.rmtree(stack_dir, ignore_errors=True)
    return stack_dir


def ivr_sessions_above(max_payment_calls: int) -> int:
    """An ivr session limit comfortably above Asterisk's payment-call limit (a quarter more)."""
    return max_payment_calls + max(max_payment_calls // 4, 1)


def _rates(text: str) -> list[int]:
    return sorted({int(part) for part in text.split(",") if part.strip()})


TARGETS = ("baseline", "ivr")


Step = tuple[str, int, int, int | None]  # target, calls a second, seconds, calls held


def step_plan(rates: str, which: str, duration_s: int, held: str = "",
              pace: str = "person") -> list[Step]:
    """(target, calls a second, seconds, calls held at once or None) for each step: rate by
    rate, then each number of calls held at once, each named target in TARGETS' order (the
    baseline first, so both meet the same machine within minutes)."""
    chosen = {name.strip() for name in which.split(",") if name.strip()}
    unknown = chosen - set(TARGETS)
    if unknown or not chosen:
        raise SystemExit(f"--targets: choose from {', '.join(TARGETS)} (got {which!r})")
    names = [target for target in TARGETS if target in chosen]
    return ([(target, rate, duration_s, None) for rate in _rates(rates) for target in names]
            + [(target, held_fill_rate(calls, PACES[pace][1]), duration_s, calls)
               for calls in _rates(held) for target in names])


def _row(step: StepResult) -> str:
    def ms(value: float | None) -> str:
        return f"{value:8.0f}" if value is not None else f"{'-':>8}"
    cpu = " ".join(f"{step.cpu_ms_per_call[name]:7.1f}" for name in step.cpu_ms_per_call)
    return (f"{step.target:<9} {step.rate:>5} {step.placed:>6} {step.completed:>9} "
            f"{step.refused:>7} {step.failed:>6} {step.right:>6} "
            f"{ms(step.invite_200_p50_ms)} {ms(step.invite_200_p99_ms)} "
            f"{ms(step.invite_503_p50_ms)} {ms(step.invite_503_p99_ms)}  {cpu} "
            f"{step.udp_rcvbuf_errors:>9} {step.sip_socket_drops:>9} "
            f"{step.rss_growth_kib['asterisk'] / 1024:>8.1f} {step.rss_growth_kib['ivr'] / 1024:>8.1f} "
            f"{step.calls_at_once:>7} {step.kib_per_call['asterisk']:>8.0f} "
            f"{step.kib_per_call['ivr']:>8.0f} "
            f"{ms(step.pin_to_outcome_p50_ms)} {ms(step.pin_to_outcome_p99_ms)} "
            f"{step.waited_percent['ivr']:>8.1f} {step.waited_percent['redis']:>8.1f} "
            f"{sum(step.taskprocessor_alerts.values()):>9} "
            f"{step.held if step.held is not None else '-':>6}")


HEADER = (f"{'target':<9} {'cps':>5} {'placed':>6} {'completed':>9} {'refused':>7} {'failed':>6} "
          f"{'right':>6} {'200 p50':>8} {'200 p99':>8} {'503 p50':>8} {'503 p99':>8}  "
          f"{'ast ms':>7} {'ivr ms':>7} {'redis':>7} {'acq ms':>7} {'sipp ms':>7} "
          f"{'udp errs':>9} {'sip drops':>9} {'ast ΔMiB':>8} {'ivr ΔMiB':>8} "
          f"{'at once':>7} {'ast KiB':>8} {'ivr KiB':>8} {'pin p50':>8} {'pin p99':>8} "
          f"{'ivr wait':>8} {'rds wait':>8} {'tp alerts':>9} {'held':>6}")


def _load_baseline(stack: Stack) -> None:
    assert stack.asterisk is not None
    for command in baseline.cli_commands():
        stack.asterisk.cli(command)
    shown = stack.asterisk.cli(f"dialplan show {baseline.NUMBER}@{baseline.CONTEXT}")
    if "Hangup()" not in shown:
        raise SystemExit(f"the baseline dialplan did not load:\n{shown}")


def _probes(stack: Stack, settings: Settings) -> Probes:
    return Probes(pid_of=stack.supervisor.pid, redis_url=settings.redis_url,
                  journal=journal_path(stack.acquirer_settings),
                  messages_log=settings.var_dir / "asterisk" / "log" / "messages.log",
                  ivr_log=settings.var_dir / "log" / "ivr.log")


def _measure(probes: Probes, plan: list[Step], work: Path, pace: str) -> list[StepResult]:
    print("refused: calls refused with SIP 503 before answer, the IVR past "
          "VOICEPAY_MAX_PAYMENT_CALLS or its CPU guard closed (not failures; 503 p50/p99: "
          "INVITE to 503, ms); "
          "CPU columns: milliseconds per completed call (idle work included: read them at load; "
          "sipp: the load generator's own, on the same cores); "
          "udp errs: UDP receive-buffer errors in the step (this network namespace, SIPp's unread "
          "media socket included); sip drops: datagrams dropped at Asterisk's UDP 5060; ΔMiB: resident "
          "memory after the step less before (flat over a soak); at once: the most calls SIPp held "
          "at once; KiB: resident memory at its highest less before, per call at once; pin p50/p99: "
          "the ivr's PIN entered to the acquirer's answer settled, ms (\"please wait\" plays meanwhile); "
          "ivr/rds wait: % of the step the ivr service's and Redis's one thread was ready to run "
          "but waited for a core; tp alerts: Asterisk's warnings of a taskprocessor queue at its "
          "high-water mark (results.json names them); held: a step keeping that many calls up at once "
          "(cps: how fast it fills and refills)")
    print(HEADER, flush=True)
    results = []
    calls = targets(pace)
    for target, rate, duration_s, held in plan:
        step = run_step(calls[target], rate, duration_s, probes, work, held)
        results.append(step)
        print(_row(step), flush=True)
    return results


# A soak's memory is judged from here on: the calls at once have long reached their steady number.
SOAK_STEADY_S = 300


def soak_memory(step: StepResult) -> str:
    """The soak's resident memory, a line a minute, and its growth once steady."""
    lines = ["memory over the soak (resident MiB; minute: " + " ".join(COMPONENTS) + ")"]
    for at, kib in step.rss_timeline:
        lines.append(f"{at / 60:6.0f}  " + " ".join(f"{kib[name] / 1024:8.1f}" for name in COMPONENTS))
    growth = steady_growth_kib(step.rss_timeline, SOAK_STEADY_S)
    if growth is None:
        lines.append(f"steady growth: too short a soak (samples from minute {SOAK_STEADY_S // 60} on)")
    else:
        lines.append(f"steady growth, minute {SOAK_STEADY_S // 60} to the end: " + ", ".join(
            f"{name} {growth[name] / 1024:+.1f} MiB" for name in COMPONENTS))
    return "\n".join(lines)


def _measure_api(probes: Probes, settings: Settings, args: argparse.Namespace,
                 work: Path) -> dict:
    print("merchant API: signed requests, concurrency clients in a closed loop for "
          f"{args.api_seconds} s each; p50/p99 of the expected answers (201, 200); CPU as % of "
          "one core over the step (client: this load generator)")
    print(API_HEADER, flush=True)
    steps = asyncio.run(run_api_steps(settings, probes, _rates(args.api_concurrency),
                                      args.api_seconds, lambda step: print(api_row(step),
                                                                           flush=True)))
    dialer = run_dialer(settings, probes, work, args.dialer_orders, max(_rates(args.api_concurrency)))
    print(dialer_row(dialer), flush=True)
    return {"api": [dataclasses.asdict(s) for s in steps], "dialer": dataclasses.asdict(dialer)}


def _summary(results: list[StepResult]) -> dict:
    """The knees of both targets and their ratio, in calls a second over the rate steps and in
    calls at once over the held steps."""
    summary = {}
    for by, steps, suffix in (("rate", [s for s in results if s.held is None], ""),
                              ("held", [s for s in results if s.held is not None], "_held")):
        knees = {target: knee([s for s in steps if s.target == target], by)
                 for target in TARGETS}
        summary |= {f"knee_ivr{suffix}": knees["ivr"], f"knee_baseline{suffix}": knees["baseline"],
                    f"ratio{suffix}": (knees["ivr"] / knees["baseline"]
                                       if knees["ivr"] is not None and knees["baseline"] else None)}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("--rates", help="calls per second, comma-separated (default 4,8, or "
                                         "none when --held is given)")
    parser.add_argument("--held", default="",
                        help="calls held at once, comma-separated: steps that keep that many "
                             "calls up (a new one as soon as one ends) for --duration once full")
    parser.add_argument("--duration", type=int, default=80,
                        help="seconds of new calls per step; longer than a call (about 60 s), "
                             "or the step never reaches its steady number of calls at once")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help="which calls each rate places, comma-separated: baseline, ivr "
                             "(e.g. ivr alone past the knee with --max-payment-calls set as "
                             "the README's sizing says: the refusals)")
    parser.add_argument("--pace", choices=sorted(PACES), default="person",
                        help="how the callers key: person, each answer a second after its whole "
                             "question (a 78-s call); regular, a caller who knows the line and "
                             "keys during the questions, the PIN after its question (a 50-s call)")
    parser.add_argument("--soak", type=int, metavar="RATE",
                        help="instead: one IVR step at RATE for --soak-minutes")
    parser.add_argument("--soak-minutes", type=int, default=30)
    parser.add_argument("--chart", type=Path, default=REPO_ROOT / "docs" / "bench-load.png")
    parser.add_argument("--caption", default="", help="added to the chart's title (machine, caveats)")
    parser.add_argument("--max-payment-calls", type=int, metavar="N",
                        help="VOICEPAY_MAX_PAYMENT_CALLS for this run (default: as configured); "
                             "above a step's simultaneous calls to find the knee, below to see "
                             "the refusals")
    parser.add_argument("--admit-cpu-busy", type=int, metavar="PERCENT",
                        help="VOICEPAY_ADMIT_CPU_BUSY_PERCENT for this run (default: as "
                             "configured, 80): 100 to find the knee without the CPU guard (the "
                             "baseline has none), lower to see it refuse")
    parser.add_argument("--api-only", action="store_true",
                        help="only the merchant API and dialer steps, no calls")
    parser.add_argument("--api-concurrency", default="1,4,16,64",
                        help="clients at once in the API steps, comma-separated")
    parser.add_argument("--api-seconds", type=float, default=8, help="seconds per API step")
    parser.add_argument("--dialer-orders", type=int, default=100,
                        help="callback orders in the dialer's burst")
    args = parser.parse_args(argv)

    settings = load_settings()
    out_dir = settings.var_dir / "bench-load"
    out_dir.mkdir(parents=True, exist_ok=True)
    rules = out_dir / "rules-velocity-shadow.yaml"
    rules.write_text(shadow_velocity_rules(settings.risk_rules_file.read_text(encoding="utf-8")),
                     encoding="utf-8")
    os.environ["VOICEPAY_RISK_RULES_FILE"] = str(rules)  # the ivr service the stack starts
    if args.max_payment_calls is not None:  # written into the dialplan when the stack prepares
        os.environ["VOICEPAY_MAX_PAYMENT_CALLS"] = str(args.max_payment_calls)
        # The ivr's own limit stays above Asterisk's, as the README's sizing asks: left at its
        # default it answered "busy" past 300 flows and the IVR's steps failed at 6 calls/s.
        os.environ["VOICEPAY_AGI_MAX_SESSIONS"] = str(ivr_sessions_above(args.max_payment_calls))
    if args.admit_cpu_busy is not None:  # read by the ivr service the stack starts
        os.environ["VOICEPAY_ADMIT_CPU_BUSY_PERCENT"] = str(args.admit_cpu_busy)
    os.environ["VOICEPAY_VAR_DIR"] = str(fresh_stack_dir(settings.var_dir))
    with_api = not args.soak
    if with_api:
        os.environ["VOICEPAY_RATE_LIMIT_MERCHANT_PER_MINUTE"] = str(_OUT_OF_REACH)
        os.environ["VOICEPAY_RATE_LIMIT_SOURCE_PER_MINUTE"] = str(_OUT_OF_REACH)
        os.environ["VOICEPAY_RATE_LIMIT_ADMIN_PER_MINUTE"] = str(_OUT_OF_REACH)  # approvals
        os.environ["VOICEPAY_CALLBACK_DIAL_PATTERN"] = DIAL_PATTERN
    settings = load_settings()
    if args.soak:
        plan = [("ivr", args.soak, args.soak_minutes * 60, None)]
    elif args.api_only:
        plan = []
    else:
        rates = args.rates if args.rates is not None else ("" if args.held else "4,8")
        plan = step_plan(rates, args.targets, args.duration, args.held, args.pace)

    stack = Stack(settings)
    # SIGTERM interrupts like Ctrl-C, so the stack this run started is stopped either way (a
    # killed run left the SIP edge and Redis behind).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(tempfile.mkdtemp(prefix="voicepay-load-"))
    started = time.time()
    try:
        stack.start()
        print(f"voicepay load benchmark: {platform.node()}, {os.cpu_count()} cores, "
              f"SIPp on the same machine, at most {settings.max_payment_calls} payment calls "
              f"at once (VOICEPAY_MAX_PAYMENT_CALLS), and none while the machine's CPUs were "
              f"over {settings.admit_cpu_busy_percent} % busy (VOICEPAY_ADMIT_CPU_BUSY_PERCENT; "
              f"100: never); load average {os.getloadavg()[0]:.1f} at "
              f"the start (other work on the machine competes for its cores)", flush=True)
        probes = _probes(stack, settings)
        results = []
        if plan:
            _load_baseline(stack)
            results = _measure(probes, plan, work, args.pace)
            if args.soak:
                print(soak_memory(results[0]), flush=True)
        api = {}
        if with_api:
            establish_seed_merchants(settings)  # the dialer's merchant is an established one
            api = _measure_api(probes, settings, args, work)
    finally:
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
    summary = _summary(results)
    if plan:
        def ratio(value: float | None) -> str:
            return f"{value:.2f}" if value is not None else "-"
        if any(s.held is None for s in results):
            print(f"knee: payment IVR {summary['knee_ivr']} calls/s, baseline "
                  f"{summary['knee_baseline']} calls/s, ratio {ratio(summary['ratio'])}")
        if any(s.held is not None for s in results):
            print(f"knee held: payment IVR {summary['knee_ivr_held']} calls at once, baseline "
                  f"{summary['knee_baseline_held']} calls at once, ratio "
                  f"{ratio(summary['ratio_held'])}")
    print(f"({time.time() - started:.0f} s)")
    (out_dir / "results.json").write_text(json.dumps(
        {"pace": args.pace, "max_payment_calls": settings.max_payment_calls,
         "admit_cpu_busy_percent": settings.admit_cpu_busy_percent,
         "steps": [dataclasses.asdict(s) for s in results], **summary, **api},
        indent=2))
    if plan and not args.soak:
        from bench.load.chart import write_chart  # matplotlib only when a chart is drawn
        caption = (f"voicepay load benchmark, {os.cpu_count()} cores, SIPp on the same machine, "
                   f"{args.duration} s of calls per step, callers keyed at a {args.pace}'s "
                   f"pace. {args.caption}").strip()
        rate_steps = [s for s in results if s.held is None]
        if rate_steps:
            print(f"chart: {write_chart(rate_steps, args.chart, caption)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
