"""Rules as data: the rules file, its checks on load, its evaluation, and reloading it live.

The file is YAML (``ivr/risk/rules.yaml`` is the shipped default; ``VOICEPAY_RISK_RULES_FILE`` names
the operator's copy). Expressions are in rule-engine's language, over the facts of
``ivr/risk/facts.py``::

    version: "2026-11-27.1"
    thresholds: {step_up: 30, review: 60, decline: 100}   # total score -> outcome
    unavailable: review        # a provider did not answer: never approve, take this path
    rules:
      - name: identity_mismatch
        when: identity == "mismatch"
        score: 100
        reason: the name does not go with the ID number
        outcome: decline       # optional: at least this outcome, whatever the score
        modes: [callback, oneline]   # optional: only these modes (default all)
        shadow: true           # optional: evaluated and recorded, never counted

Everything is checked on load and every problem reported at once: YAML syntax, unknown keys,
duplicate names, expression syntax, unknown fact names, types (``amount > "x"``), an expression
that is not true/false, thresholds not strictly increasing. A file that fails keeps the running
rules in place. A loaded file's version is its ``version`` and the first 12 hex digits of its
SHA-256, so two edits that forget to change ``version`` still differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rule_engine
import yaml

from ivr.risk.audit import RULES, RiskAudit
from ivr.risk.decision import FiredRule, RiskDecision, RiskOutcome
from ivr.risk.facts import FACT_TYPES, MODES, facts_for_rules

__all__ = ["SHIPPED_RULES", "RulesError", "Rule", "Thresholds", "RuleSet", "load_rules",
           "read_rules", "RuleBook", "ReloadResult", "SEVERITY"]

log = logging.getLogger(__name__)

SHIPPED_RULES = Path(__file__).with_name("rules.yaml")
SEVERITY: tuple[RiskOutcome, ...] = (RiskOutcome.APPROVE, RiskOutcome.STEP_UP, RiskOutcome.REVIEW,
                                     RiskOutcome.DECLINE)
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_RULE_KEYS = {"name", "when", "score", "reason", "outcome", "modes", "shadow"}
_TOP_KEYS = {"version", "thresholds", "unavailable", "rules"}
_CONTEXT = rule_engine.Context(type_resolver=rule_engine.type_resolver_from_dict(FACT_TYPES))


class RulesError(ValueError):
    """A rules file that cannot be used; ``problems`` lists every reason."""

    def __init__(self, source: str, problems: list[str]) -> None:
        super().__init__(f"rules file {source}: " + "; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Rule:
    name: str
    when: str
    score: int
    reason: str
    outcome: RiskOutcome | None = None
    modes: frozenset[str] = frozenset(MODES)
    shadow: bool = False
    compiled: rule_engine.Rule | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "when": self.when, "score": self.score, "reason": self.reason,
                "outcome": self.outcome.value if self.outcome else None,
                "modes": sorted(self.modes), "shadow": self.shadow}


@dataclass(frozen=True)
class Thresholds:
    step_up: int
    review: int
    decline: int

    def outcome(self, score: int) -> RiskOutcome:
        if score >= self.decline:
            return RiskOutcome.DECLINE
        if score >= self.review:
            return RiskOutcome.REVIEW
        if score >= self.step_up:
            return RiskOutcome.STEP_UP
        return RiskOutcome.APPROVE


def _worst(*outcomes: RiskOutcome) -> RiskOutcome:
    return max(outcomes, key=SEVERITY.index)


@dataclass(frozen=True)
class RuleSet:
    version: str
    thresholds: Thresholds
    unavailable: RiskOutcome
    rules: tuple[Rule, ...]
    digest: str = ""

    def evaluate(self, facts: dict[str, Any], unavailable: tuple[str, ...] = ()) -> RiskDecision:
        """The decision for one payment's facts (as ``build_facts`` makes them)."""
        values = facts_for_rules(facts)
        fired: list[FiredRule] = []
        forced: list[RiskOutcome] = []
        broken: list[str] = []
        for rule in self.rules:
            if facts["mode"] not in rule.modes:
                continue
            try:
                matched = rule.compiled.matches(values)  # type: ignore[union-attr]
            except (rule_engine.EngineError, TypeError, ArithmeticError):
                # Checked types make this a bug, not bad input: never let it approve.
                log.exception("risk rule %s could not be evaluated", rule.name)
                broken.append(rule.name)
                continue
            if matched:
                fired.append(FiredRule(rule.name, rule.score, rule.reason, rule.shadow))
                if rule.outcome and not rule.shadow:
                    forced.append(rule.outcome)
        score = sum(r.score for r in fired if not r.shadow)
        outcome = _worst(self.thresholds.outcome(score), *forced)
        # An outage (or a rule that failed) never approves: at least the configured path.
        if (unavailable or broken) and SEVERITY.index(outcome) < SEVERITY.index(self.unavailable):
            outcome = self.unavailable
            what = ", ".join([*unavailable, *(f"rule {n}" for n in broken)])
            fired.append(FiredRule("unavailable", 0, f"no answer from {what}"))
        return RiskDecision(outcome=outcome, score=score, fired=tuple(fired),
                            unavailable=tuple(unavailable), rules_version=self.version)

    def to_json(self) -> dict[str, Any]:
        t = self.thresholds
        return {"version": self.version, "unavailable": self.unavailable.value,
                "thresholds": {"step_up": t.step_up, "review": t.review, "decline": t.decline},
                "rules": [r.to_json() for r in self.rules]}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _rule(entry: object, index: int, problems: list[str]) -> Rule | None:
    where = f"rule {index + 1}"
    if not isinstance(entry, dict):
        problems.append(f"{where} is not a mapping")
        return None
    name = entry.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        where = f"rule {name!r}"
    else:
        problems.append(f"{where}: name must be lower_case_with_underscores")
    before = len(problems)
    if unknown := set(entry) - _RULE_KEYS:
        problems.append(f"{where}: unknown keys {sorted(map(str, unknown))}")
    score = entry.get("score")
    # Negative scores are allowed (an allow-list hit may lower the total); forced outcomes
    # (a block list, an identity mismatch) are never lowered by them.
    if not (_is_int(score) and -1000 <= score <= 1000):
        problems.append(f"{where}: score must be a whole number from -1000 to 1000")
    reason = entry.get("reason")
    if not (isinstance(reason, str) and reason.strip()):
        problems.append(f"{where}: reason is missing")
    outcome = entry.get("outcome")
    if outcome is not None and outcome not in ("step_up", "review", "decline"):
        problems.append(f"{where}: outcome must be step_up, review or decline")
    modes = entry.get("modes", list(MODES))
    if not (isinstance(modes, list) and modes and all(m in MODES for m in modes)):
        problems.append(f"{where}: modes must be a list of {', '.join(MODES)}")
    shadow = entry.get("shadow", False)
    if not isinstance(shadow, bool):
        problems.append(f"{where}: shadow must be true or false")
    when = entry.get("when")
    compiled = None
    if not (isinstance(when, str) and when.strip()):
        problems.append(f"{where}: when (the expression) is missing")
    else:
        try:
            compiled = rule_engine.Rule(when, context=_CONTEXT)
        except rule_engine.SymbolResolutionError as exc:
            problems.append(f"{where}: unknown fact {exc.symbol_name!r}")
        except rule_engine.RuleSyntaxError as exc:
            problems.append(f"{where}: syntax error in when ({exc.message})")
        except rule_engine.EngineError as exc:
            problems.append(f"{where}: when does not type-check ({exc.message})")
        else:
            if compiled.statement.expression.result_type not in (rule_engine.DataType.BOOLEAN,
                                                                  rule_engine.DataType.UNDEFINED):
                problems.append(f"{where}: when must be true or false, not "
                                f"{compiled.statement.expression.result_type.name}")
    if len(problems) > before or not isinstance(name, str):
        return None
    return Rule(name=name, when=when, score=score, reason=reason.strip(),
                outcome=RiskOutcome(outcome) if outcome else None, modes=frozenset(modes),
                shadow=shadow, compiled=compiled)


def load_rules(text: str, source: str = "<rules>") -> RuleSet:
    """A checked ``RuleSet`` from a rules file's text, or ``RulesError`` with every problem."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark is not None else ""
        raise RulesError(source, [f"not valid YAML{at}"]) from None
    if not isinstance(document, dict):
        raise RulesError(source, ["not a mapping with version, thresholds and rules"])
    problems: list[str] = []
    if unknown := set(document) - _TOP_KEYS:
        problems.append(f"unknown keys {sorted(map(str, unknown))}")
    version = document.get("version")
    if not (isinstance(version, (str, int)) and str(version).strip()):
        problems.append("version is missing")
    raw = document.get("thresholds")
    thresholds = None
    if not (isinstance(raw, dict) and set(raw) == {"step_up", "review", "decline"}
            and all(_is_int(v) and v > 0 for v in raw.values())):
        problems.append("thresholds must give step_up, review and decline as positive numbers")
    elif not raw["step_up"] < raw["review"] < raw["decline"]:
        problems.append("thresholds must be in order: step_up < review < decline")
    else:
        thresholds = Thresholds(raw["step_up"], raw["review"], raw["decline"])
    unavailable = document.get("unavailable", "review")
    if unavailable not in ("review", "decline"):
        problems.append("unavailable must be review or decline (an outage never approves)")
    entries = document.get("rules")
    rules: list[Rule] = []
    if not (isinstance(entries, list) and entries):
        problems.append("rules must be a non-empty list")
    else:
        seen: set[str] = set()
        for index, entry in enumerate(entries):
            name = entry.get("name") if isinstance(entry, dict) else None
            if isinstance(name, str):
                if name in seen:
                    problems.append(f"rule {name!r} is defined twice")
                seen.add(name)
            if (rule := _rule(entry, index, problems)) is not None:
                rules.append(rule)
    if problems:
        raise RulesError(source, problems)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return RuleSet(version=f"{str(version).strip()}+{digest[:12]}", thresholds=thresholds,
                   unavailable=RiskOutcome(unavailable), rules=tuple(rules), digest=digest)


def read_rules(path: Path) -> RuleSet:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(str(path), [f"unreadable ({exc.__class__.__name__})"]) from None
    return load_rules(text, str(path))


@dataclass(frozen=True)
class ReloadResult:
    result: str                 # "loaded" | "unchanged" | "rejected"
    version: str                # the version running afterwards
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.result != "rejected"


class RuleBook:
    """The running rules of this process, replaced only by a file that passes every check.

    ``reload`` is what the admin endpoint and the file watcher call; each attempt, whatever its
    result, is appended to the rules audit stream."""

    def __init__(self, path: Path, audit: RiskAudit) -> None:
        self.path = Path(path)
        self._audit = audit
        self._current: RuleSet | None = None
        self._last_seen: bytes | None = None   # the file's bytes at the last attempt

    @property
    def current(self) -> RuleSet:
        if self._current is None:
            raise RuntimeError("rules not loaded: call RuleBook.start() first")
        return self._current

    async def start(self) -> RuleSet:
        """Load the file at start-up; a broken file here is fatal (there is nothing to keep)."""
        result = await self.reload(trigger="start")
        if not result.ok:
            raise RulesError(str(self.path), list(result.problems))
        return self.current

    async def reload(self, trigger: str) -> ReloadResult:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raw, rules, problems = None, None, [f"unreadable ({exc.__class__.__name__})"]
        else:
            self._last_seen = raw
            try:
                rules, problems = load_rules(raw.decode("utf-8"), str(self.path)), []
            except UnicodeDecodeError:
                rules, problems = None, ["not UTF-8 text"]
            except RulesError as exc:
                rules, problems = None, exc.problems
        if rules is None:
            outcome = ReloadResult("rejected", self._current.version if self._current else "",
                                   tuple(problems))
            log.error("risk rules %s rejected (%s), still running %s: %s", self.path, trigger,
                      outcome.version or "nothing", "; ".join(problems))
        elif self._current is not None and rules.digest == self._current.digest:
            outcome = ReloadResult("unchanged", rules.version)
        else:
            self._current = rules
            outcome = ReloadResult("loaded", rules.version)
            log.info("risk rules %s loaded (%s): version %s, %d rules", self.path, trigger,
                     rules.version, len(rules.rules))
        await self._audit.append(RULES, {"trigger": trigger, "file": str(self.path),
                                         "result": outcome.result, "version": outcome.version,
                                         "problems": list(outcome.problems)})
        return outcome

    async def watch(self, period_s: float) -> None:
        """Reload whenever the file's content changes (polled: works on every filesystem and
        with editors that replace the file). A broken file is attempted once per change."""
        while True:
            await asyncio.sleep(period_s)
            try:
                raw = self.path.read_bytes()
            except OSError:
                raw = None
            if raw != self._last_seen and raw is not None:
                try:
                    await self.reload(trigger="file-change")
                except Exception:  # Redis down for the audit: try again next period
                    log.exception("risk rules reload failed")
