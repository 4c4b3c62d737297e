"""The load benchmark's picture against the call rate, the payment IVR beside the dialplan-only
baseline: calls right (payments approved right, baseline answers read right; completed calls
dashed, those refused with 503 dotted), INVITE→200 latency, and the IVR's PIN to outcome.
A completed call is not a paid one: at its knee the IVR completed every call and paid 29 %."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: a file only
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

from bench.load.measure import StepResult  # noqa: E402

__all__ = ["write_chart"]

_LABELS = {"ivr": "payment IVR (FastAGI, Redis, acquirer)", "baseline": "dialplan-only baseline"}
# One colour and marker per target (the two completion lines often lie on each other).
_STYLE = {"ivr": {"color": "tab:blue", "marker": "o"},
          "baseline": {"color": "tab:orange", "marker": "s", "markerfacecolor": "none"}}


def write_chart(steps: list[StepResult], path: Path, caption: str) -> Path:
    figure, (completion, latency, pin) = plt.subplots(1, 3, figsize=(15, 4.2))
    for target in ("ivr", "baseline"):
        rows = sorted((s for s in steps if s.target == target), key=lambda s: s.rate)
        if not rows:
            continue
        rates = [s.rate for s in rows]
        completion.plot(rates, [100 * s.right / s.placed if s.placed else 0 for s in rows],
                        label=f"{_LABELS[target]}: right", **_STYLE[target])
        completion.plot(rates, [100 * s.completed / s.placed if s.placed else 0 for s in rows],
                        linestyle="--", linewidth=0.8, label=f"{_LABELS[target]}: completed",
                        **_STYLE[target])
        if any(s.refused for s in rows):
            completion.plot(rates, [100 * s.refused / s.placed if s.placed else 0 for s in rows],
                            linestyle=":", label=f"{_LABELS[target]}: refused with 503",
                            **_STYLE[target])
        for percent, line in (("p50", "-"), ("p99", "--")):
            values = [getattr(s, f"invite_200_{percent}_ms") for s in rows]
            latency.plot(rates, [v if v is not None else float("nan") for v in values],
                         linestyle=line, label=f"{_LABELS[target]} {percent}", **_STYLE[target])
        if target == "ivr":
            for percent, line in (("p50", "-"), ("p99", "--")):
                values = [getattr(s, f"pin_to_outcome_{percent}_ms") for s in rows]
                pin.plot(rates, [v if v is not None else float("nan") for v in values],
                         linestyle=line, label=f"{_LABELS[target]} {percent}", **_STYLE[target])
    completion.set(xlabel="calls per second", ylabel="% of calls placed", ylim=(0, 105),
                   title="Calls right (solid) and completed (dashed)")
    pin.set(xlabel="calls per second", ylabel="PIN entered → outcome (ms)", yscale="log",
            title="PIN to result (\"please wait\" is 4.5 s)")
    latency.set(xlabel="calls per second", ylabel="INVITE → 200 (ms)", yscale="log",
                title="Answer latency")
    for axes in (completion, latency, pin):
        axes.grid(True, alpha=0.3)
        axes.legend(fontsize=7)
    figure.suptitle(caption, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
