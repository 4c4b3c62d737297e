"""Every setting of voicepay, read from the environment in one place.

Each field names its environment variable and default. The README's configuration table is
generated from these fields (and the acquirer simulator's) by ``python -m devstack.config_table``,
and a unit test keeps the two equal. Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from ivr.money import Money
from ivr.payments.settlement_day import Cutoff

__all__ = ["Settings", "load_settings", "load_from_env", "REPO_ROOT", "LOOPBACK_NETWORKS",
           "TALKTHROUGH_PROMPTS"]

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every loopback address, IPv4 and IPv6: who may reach what listens on this machine only.
LOOPBACK_NETWORKS = "127.0.0.0/8,::1/128"
# Who hears the prompts of a talk-through payment (Settings.talkthrough_prompts).
TALKTHROUGH_PROMPTS = ("caller", "both")


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


@dataclass(frozen=True)
class Settings:
    # Where everything the stack writes at run time lives (Redis data, keys, logs, Asterisk spool).
    var_dir: Path = field(metadata={"env": "VOICEPAY_VAR_DIR"}, default=REPO_ROOT / "var")
    redis_url: str = field(metadata={"env": "VOICEPAY_REDIS_URL"}, default="redis://127.0.0.1:6390/0")
    # Connections the ivr service keeps to Redis at most; a command finding them all busy waits
    # for one (hundreds of calls at once burst past any pool; failing them declined payments).
    redis_max_connections: int = field(metadata={"env": "VOICEPAY_REDIS_MAX_CONNECTIONS"},
                                       default=64)
    http_host: str = field(metadata={"env": "VOICEPAY_HTTP_HOST"}, default="127.0.0.1")
    http_port: int = field(metadata={"env": "VOICEPAY_HTTP_PORT"}, default=8080)
    # FastAGI is bound to loopback: anyone who can reach it could drive calls.
    agi_host: str = field(metadata={"env": "VOICEPAY_AGI_HOST"}, default="127.0.0.1")
    agi_port: int = field(metadata={"env": "VOICEPAY_AGI_PORT"}, default=4573)
    # Who may open a FastAGI session (addresses or networks, comma-separated): Asterisk only. Add
    # Asterisk's address here if it runs on another host (and bind VOICEPAY_AGI_HOST accordingly).
    agi_allowed_peers: str = field(metadata={"env": "VOICEPAY_AGI_ALLOWED_PEERS"},
                                   default=LOOPBACK_NETWORKS)
    # Overload (README "Past the knee"). The most payment calls one Asterisk carries at once:
    # the dialplan counts them (GROUP_COUNT) and refuses the next new call before Answer() with
    # SIP 503. 240: the lowest knee measured on the 2-core development machine, 6 calls/s of a
    # 40-s call; size it from `make bench-load` on the machine Asterisk runs on.
    max_payment_calls: int = field(metadata={"env": "VOICEPAY_MAX_PAYMENT_CALLS"}, default=240)
    # And while the machine's CPUs were busier than this (percent, over the last 2 s), new
    # payment calls are refused the same way, until 10 points lower (ivr/cpu_guard.py): the
    # count is sized on one hour, and the same machine carries fewer calls in a slower one.
    # 80, not 90: the calls admitted cost more as they go on (README "Run 10"), and at 90 they
    # took the machine to 100 %. 100: never refused for the CPU (Asterisk on another host).
    admit_cpu_busy_percent: int = field(metadata={"env": "VOICEPAY_ADMIT_CPU_BUSY_PERCENT"},
                                        default=80)
    # The most FastAGI flows this ivr service runs at once: past it, a new self-service call hears
    # "all lines are busy" and is hung up. Above every Asterisk's limit that it serves together.
    agi_max_sessions: int = field(metadata={"env": "VOICEPAY_AGI_MAX_SESSIONS"}, default=300)
    ami_host: str = field(metadata={"env": "VOICEPAY_AMI_HOST"}, default="127.0.0.1")
    # Not to be changed alone: asterisk-conf/manager.conf sets the port Asterisk listens on.
    ami_port: int = field(metadata={"env": "VOICEPAY_AMI_PORT"}, default=5038)
    ami_user: str = field(metadata={"env": "VOICEPAY_AMI_USER"}, default="voicepay")
    # Empty: the secret generated at first start into var/keys/asterisk.json (ivr/asterisk_secrets.py).
    ami_secret: str = field(metadata={"env": "VOICEPAY_AMI_SECRET"}, default="")
    acquirer_host: str = field(metadata={"env": "VOICEPAY_ACQUIRER_HOST"}, default="127.0.0.1")
    acquirer_port: int = field(metadata={"env": "VOICEPAY_ACQUIRER_PORT"}, default=8583)
    # How long the IVR waits for an authorization answer before it reverses the request.
    acquirer_timeout: float = field(metadata={"env": "VOICEPAY_ACQUIRER_TIMEOUT"}, default=5.0)
    # Self-service line identity towards the acquirer (ISO 8583 fields 41 and 42).
    terminal_id: str = field(metadata={"env": "VOICEPAY_TERMINAL_ID"}, default="VPIVR001")
    merchant_id: str = field(metadata={"env": "VOICEPAY_MERCHANT_ID"}, default="898100048160001")
    # Where Asterisk finds the prompts (the repo's sounds/ as mounted inside its sandbox). Not
    # to be changed alone: the dialplan's Playback() paths and the sandbox's bind mount
    # (devstack/asterisk_sandbox.py) name /opt/voicepay/sounds too.
    sounds_path: str = field(metadata={"env": "VOICEPAY_SOUNDS_PATH"}, default="/opt/voicepay/sounds")
    language: str = field(metadata={"env": "VOICEPAY_LANGUAGE"}, default="zh")
    # Keypad timing, in milliseconds: first digit after a prompt, and between digits.
    first_digit_timeout_ms: int = field(metadata={"env": "VOICEPAY_FIRST_DIGIT_TIMEOUT_MS"}, default=10000)
    inter_digit_timeout_ms: int = field(metadata={"env": "VOICEPAY_INTER_DIGIT_TIMEOUT_MS"}, default=5000)
    max_entry_attempts: int = field(metadata={"env": "VOICEPAY_MAX_ENTRY_ATTEMPTS"}, default=3)
    # Card numbers are kept (encrypted) only this long.
    pan_ttl_seconds: int = field(metadata={"env": "VOICEPAY_PAN_TTL_SECONDS"}, default=86400)
    # Root of the Asterisk filesystem: a cached Debian sid rootfs, or "/" for a system Asterisk.
    asterisk_root: str = field(metadata={"env": "VOICEPAY_ASTERISK_ROOT"}, default="")
    # Above 0, Asterisk's verbose and debug levels, and a var/asterisk/log/full of everything.
    asterisk_debug_level: int = field(metadata={"env": "VOICEPAY_ASTERISK_DEBUG_LEVEL"}, default=0)
    log_level: str = field(metadata={"env": "VOICEPAY_LOG_LEVEL"}, default="INFO")
    # The XDG cache directory, as every XDG program reads it; ours is its voicepay/ folder
    # (the Asterisk rootfs built once by devstack/asterisk_sandbox.py).
    cache_home: Path = field(metadata={"env": "XDG_CACHE_HOME"}, default=Path.home() / ".cache")
    # Callback payments: how the cardholder is called, and how often.
    # {mobile} is replaced by the order's mobile number: "PJSIP/{mobile}" dials an endpoint of
    # that name; "PJSIP/{mobile}@carrier" would send it to a trunk.
    callback_dial_pattern: str = field(metadata={"env": "VOICEPAY_CALLBACK_DIAL_PATTERN"},
                                       default="PJSIP/{mobile}")
    callback_max_attempts: int = field(metadata={"env": "VOICEPAY_CALLBACK_MAX_ATTEMPTS"}, default=3)
    callback_retry_spacing_s: float = field(metadata={"env": "VOICEPAY_CALLBACK_RETRY_SPACING_S"},
                                            default=60.0)
    callback_ring_timeout_s: float = field(metadata={"env": "VOICEPAY_CALLBACK_RING_TIMEOUT_S"},
                                           default=30.0)
    # A placed attempt is settled (answered or not) no sooner than this long after its ring
    # timeout: room for an answered call to reach the callback flow, whose ANSWERED is the truth.
    callback_answer_grace_s: float = field(metadata={"env": "VOICEPAY_CALLBACK_ANSWER_GRACE_S"},
                                           default=5.0)
    # A due callback is claimed by one ivr instance for this long, renewed while it rings; an
    # instance that dies leaves its claims to be taken over this long after its last renewal.
    callback_lease_s: float = field(metadata={"env": "VOICEPAY_CALLBACK_LEASE_S"}, default=15.0)
    # A callback waits for a free line while Asterisk carries its most payment calls
    # (max_payment_calls); one that waited this long is not placed: the payment expires.
    callback_line_wait_s: float = field(metadata={"env": "VOICEPAY_CALLBACK_LINE_WAIT_S"},
                                        default=300.0)
    callback_caller_name: str = field(metadata={"env": "VOICEPAY_CALLBACK_CALLER_NAME"},
                                      default="Secure payment")
    callback_caller_number: str = field(metadata={"env": "VOICEPAY_CALLBACK_CALLER_NUMBER"},
                                        default="95000")
    # Names this ivr instance in the claims it holds on shared work (callbacks due): unique per
    # running instance. Empty: host name, process id and a random suffix.
    instance_id: str = field(metadata={"env": "VOICEPAY_INSTANCE_ID"}, default="")
    # One-line payments: the largest amount for a cardholder not seen before (yuan).
    oneline_max_amount: str = field(metadata={"env": "VOICEPAY_ONELINE_MAX_AMOUNT"},
                                    default="2000.00")
    # Talk-through one-line payments: who hears the payment IVR's prompts, "caller" (the caller
    # only) or "both" (the agent too, never a digit or a tone: README, "Talk-through").
    talkthrough_prompts: str = field(metadata={"env": "VOICEPAY_TALKTHROUGH_PROMPTS"},
                                     default="caller")
    # Whether talk-through payments are taken at all, "on" or "off". Off, Asterisk is started
    # without generated silence (transmit_silence, asterisk-conf/asterisk.conf), which the
    # agent's whispered voice rides on: 12.5 % of Asterisk's CPU a call (README "Run 8").
    talkthrough: str = field(metadata={"env": "VOICEPAY_TALKTHROUGH"}, default="on")
    # Merchant API: a signed request's timestamp may be this far from our clock, either way; its
    # nonce is remembered for twice as long, so a replay is refused for as long as it could verify.
    signature_window_seconds: int = field(metadata={"env": "VOICEPAY_SIGNATURE_WINDOW_SECONDS"},
                                          default=300)
    # The largest amount one callback payment may ask for, in yuan with two decimals (merchants
    # may have a lower limit of their own in ivr/merchants_seed.toml).
    max_payment_amount: str = field(metadata={"env": "VOICEPAY_MAX_PAYMENT_AMOUNT"},
                                    default="50000.00")
    # Merchant categories (ISO 18245, comma-separated) banned on top of the built-in gambling and
    # adult ones (ivr/merchants.py BANNED_MCCS): never admitted, their payments declined.
    banned_mccs: str = field(metadata={"env": "VOICEPAY_BANNED_MCCS"}, default="")
    # After an API key rotation the old key keeps working this long, for the merchant to switch.
    merchant_key_grace_s: float = field(metadata={"env": "VOICEPAY_MERCHANT_KEY_GRACE_S"},
                                        default=86400.0)
    # How long an Idempotency-Key and the first response to it are kept.
    idempotency_ttl_seconds: int = field(metadata={"env": "VOICEPAY_IDEMPOTENCY_TTL_SECONDS"},
                                         default=86400)
    # Webhooks: attempt n waits base * 2**(n-1) seconds (at most max_delay) after attempt n-1.
    webhook_base_delay: float = field(metadata={"env": "VOICEPAY_WEBHOOK_BASE_DELAY"}, default=5.0)
    webhook_max_delay: float = field(metadata={"env": "VOICEPAY_WEBHOOK_MAX_DELAY"}, default=3600.0)
    webhook_max_attempts: int = field(metadata={"env": "VOICEPAY_WEBHOOK_MAX_ATTEMPTS"}, default=10)
    webhook_timeout: float = field(metadata={"env": "VOICEPAY_WEBHOOK_TIMEOUT"}, default=10.0)
    # Recovery sweep (ivr/payments/recovery.py): run at start and then every period; a payment is
    # settled once its state is older than the state's deadline. "authorizing" must outlast a live
    # authorization (the acquirer timeout and the reversal's retries) with room to spare; the call
    # states (answered, confirmed, pin_entry) a whole call, though a live channel is never touched.
    recovery_period_s: float = field(metadata={"env": "VOICEPAY_RECOVERY_PERIOD_S"}, default=60.0)
    recovery_authorizing_deadline_s: float = field(
        metadata={"env": "VOICEPAY_RECOVERY_AUTHORIZING_DEADLINE_S"}, default=120.0)
    # A payment risk_passed this long lost its next step: a callback is scheduled, a one-line
    # switch that never happened fails. Longer than an AMI switch or a dialer's claim round.
    recovery_risk_passed_deadline_s: float = field(
        metadata={"env": "VOICEPAY_RECOVERY_RISK_PASSED_DEADLINE_S"}, default=60.0)
    recovery_call_deadline_s: float = field(metadata={"env": "VOICEPAY_RECOVERY_CALL_DEADLINE_S"},
                                            default=900.0)
    # Retention (ivr/payments/retention.py): a final payment is reduced to an anonymous record
    # this many days after it ended; the anonymous record expires this many days after creation.
    retention_days: float = field(metadata={"env": "VOICEPAY_RETENTION_DAYS"}, default=180.0)
    record_retention_days: float = field(metadata={"env": "VOICEPAY_RECORD_RETENTION_DAYS"},
                                         default=1825.0)
    # The payments index (GET /v1/payments) keeps at most this many of the newest payments.
    recent_index_max: int = field(metadata={"env": "VOICEPAY_RECENT_INDEX_MAX"}, default=2_000_000)
    retention_period_s: float = field(metadata={"env": "VOICEPAY_RETENTION_PERIOD_S"},
                                           default=3600.0)
    # Graceful stop (SIGTERM): how long calls in progress may go on before they are cut off.
    drain_seconds: float = field(metadata={"env": "VOICEPAY_DRAIN_SECONDS"}, default=30.0)
    # Risk outcomes (ivr/risk/).
    # A callback held for review that no operator decides on within this time is declined.
    risk_review_timeout_s: float = field(metadata={"env": "VOICEPAY_RISK_REVIEW_TIMEOUT_S"},
                                         default=1800.0)
    # Wrong answers to the ID step-up before the payment fails (no PIN is asked for then).
    id_check_max_attempts: int = field(metadata={"env": "VOICEPAY_ID_CHECK_MAX_ATTEMPTS"},
                                       default=3)
    # Identity services (ivr/risk/identity.py): the endpoints the risk checks POST to (the
    # simulators in simulators/identity/ listen where these say) and how long an answer may take
    # before the provider counts as unavailable.
    police_url: str = field(metadata={"env": "VOICEPAY_POLICE_URL"},
                            default="http://127.0.0.1:8591/v1/identity/check")
    binding_url: str = field(metadata={"env": "VOICEPAY_BINDING_URL"},
                             default="http://127.0.0.1:8592/v1/binding/check")
    identity_timeout_s: float = field(metadata={"env": "VOICEPAY_IDENTITY_TIMEOUT_S"}, default=2.0)
    # Risk control (ivr/risk/): the rules file the engine runs (the shipped defaults unless the
    # operator points this at an edited copy) and how often it is checked for changes. How long an
    # identity provider may take is identity_timeout_s above.
    risk_rules_file: Path = field(metadata={"env": "VOICEPAY_RISK_RULES_FILE"},
                                  default=REPO_ROOT / "ivr" / "risk" / "rules.yaml")
    risk_rules_poll_s: float = field(metadata={"env": "VOICEPAY_RISK_RULES_POLL_S"}, default=5.0)
    # Agent console (ivr/console/): a session ends after this many seconds without a request; a
    # login is refused for the rest of the window after this many failures for one agent id or
    # one client address.
    console_session_ttl_s: int = field(metadata={"env": "VOICEPAY_CONSOLE_SESSION_TTL_S"},
                                       default=1800)
    console_login_max_failures: int = field(
        metadata={"env": "VOICEPAY_CONSOLE_LOGIN_MAX_FAILURES"}, default=5)
    console_login_window_s: int = field(metadata={"env": "VOICEPAY_CONSOLE_LOGIN_WINDOW_S"},
                                        default=900)
    # Voids and refunds (ivr/refunds/): a settlement day ends at this local time ("HH:MM
    # Area/City"); a void is allowed within its purchase's settlement day, a refund this many days
    # after the purchase was approved.
    settlement_cutoff: str = field(metadata={"env": "VOICEPAY_SETTLEMENT_CUTOFF"},
                                   default="23:00 Asia/Shanghai")
    refund_window_days: int = field(metadata={"env": "VOICEPAY_REFUND_WINDOW_DAYS"}, default=180)
    # Rate limits (ivr/api/rate_limits.py), requests per minute in a moving window shared by every
    # instance on this Redis: per merchant (signed requests that verified), per client address on
    # the API (/v1/...), per client address on the admin API (/v1/admin/...), and per client
    # address and per agent id on the console login (slows password guessing).
    rate_limit_merchant_per_minute: int = field(
        metadata={"env": "VOICEPAY_RATE_LIMIT_MERCHANT_PER_MINUTE"}, default=1200)
    rate_limit_source_per_minute: int = field(
        metadata={"env": "VOICEPAY_RATE_LIMIT_SOURCE_PER_MINUTE"}, default=3000)
    rate_limit_admin_per_minute: int = field(
        metadata={"env": "VOICEPAY_RATE_LIMIT_ADMIN_PER_MINUTE"}, default=600)
    rate_limit_login_per_minute: int = field(
        metadata={"env": "VOICEPAY_RATE_LIMIT_LOGIN_PER_MINUTE"}, default=20)
    # Outbound requests to URLs merchants give (webhooks) never reach loopback, link-local,
    # private, multicast, unspecified or reserved addresses, except in these networks
    # (comma-separated CIDRs; the development stack allows loopback for its test receivers).
    outbound_allowed_networks: str = field(
        metadata={"env": "VOICEPAY_OUTBOUND_ALLOWED_NETWORKS"}, default="")
    # The SIP edge (sip-edge/kamailio.cfg, started by devstack/sip_edge.py): where phones beyond
    # this machine's loopback reach voicepay (comma-separated; "lan" = every global IPv4 address of
    # this host), the address it relays to Asterisk from (matched by no Asterisk identify), the
    # requests one source may send per 2 s, and the ban after failed authentications.
    sip_edge_addresses: str = field(metadata={"env": "VOICEPAY_SIP_EDGE_ADDRESSES"},
                                    default="127.0.0.2,lan")
    sip_edge_relay_address: str = field(metadata={"env": "VOICEPAY_SIP_EDGE_RELAY_ADDRESS"},
                                        default="127.0.0.3")
    sip_edge_pike_density: int = field(metadata={"env": "VOICEPAY_SIP_EDGE_PIKE_DENSITY"},
                                       default=30)
    sip_edge_ban_after: int = field(metadata={"env": "VOICEPAY_SIP_EDGE_BAN_AFTER"}, default=5)
    sip_edge_fail_window_s: int = field(metadata={"env": "VOICEPAY_SIP_EDGE_FAIL_WINDOW_S"},
                                        default=600)
    sip_edge_ban_s: int = field(metadata={"env": "VOICEPAY_SIP_EDGE_BAN_S"}, default=600)
    # Settlement (ivr/settlement/): the platform's fees per merchant, a TOML table (a row per
    # merchant does not fit an environment variable).
    fee_table: Path = field(metadata={"env": "VOICEPAY_FEE_TABLE"},
                            default=REPO_ROOT / "ivr" / "fee_table.toml")

    @property
    def oneline_max(self) -> Money:
        return Money.parse(self.oneline_max_amount)

    @property
    def talkthrough_prompts_to_agent(self) -> bool:
        """VOICEPAY_TALKTHROUGH_PROMPTS as a choice; any other value stops the service at start."""
        if self.talkthrough_prompts not in TALKTHROUGH_PROMPTS:
            raise ValueError(f"VOICEPAY_TALKTHROUGH_PROMPTS must be one of "
                             f"{', '.join(TALKTHROUGH_PROMPTS)}, not {self.talkthrough_prompts!r}")
        return self.talkthrough_prompts == "both"

    @property
    def talkthrough_enabled(self) -> bool:
        """VOICEPAY_TALKTHROUGH as a choice; any other value stops the service at start."""
        if self.talkthrough not in ("on", "off"):
            raise ValueError(f"VOICEPAY_TALKTHROUGH must be on or off, not {self.talkthrough!r}")
        return self.talkthrough == "on"

    @property
    def max_payment(self) -> Money:
        return Money.parse(self.max_payment_amount)

    @property
    def cutoff(self) -> Cutoff:
        return Cutoff.parse(self.settlement_cutoff)

    @property
    def cache_dir(self) -> Path:
        return self.cache_home / "voicepay"

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def ivr_keys_file(self) -> Path:
        return self.keys_dir / "ivr.json"

    @property
    def merchant_keys_file(self) -> Path:
        """The merchants' API keys, generated at first use (ivr/merchants.py)."""
        return self.keys_dir / "merchants.json"

    @property
    def asterisk_secrets_file(self) -> Path:
        """The AMI secret and SIP passwords, generated at first start (ivr/asterisk_secrets.py)."""
        return self.keys_dir / "asterisk.json"

    @property
    def operator_token_file(self) -> Path:
        """The operator's bearer token for the payments API, generated at first use."""
        return self.keys_dir / "operator.token"

    @property
    def acquirer_files_dir(self) -> Path:
        """Where the acquirer drops its daily reconciliation files (simulators/acquirer/)."""
        return self.var_dir / "acquirer" / "reconciliation"

    @property
    def bin_table_file(self) -> Path:
        """The BIN table the acquirer publishes (debit or credit, issuer name), read by the IVR."""
        return self.var_dir / "acquirer" / "bin_table.json"


SettingsT = TypeVar("SettingsT")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; ``overrides`` win (tests use them)."""
    return load_from_env(Settings, **overrides)


def load_from_env(cls: type[SettingsT], **overrides: object) -> SettingsT:
    """A frozen settings dataclass whose fields name their variable in ``metadata["env"]``.

    The simulators' own settings are read the same way, so there is one reader of the environment.
    """
    values: dict[str, object] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        env_name = f.metadata["env"]
        if f.name in overrides:
            values[f.name] = overrides[f.name]
        elif env_name in os.environ:
            raw = os.environ[env_name]
            kind = type(f.default)
            values[f.name] = Path(raw) if isinstance(f.default, Path) else kind(raw)
    return cls(**values)


def settings_table(cls: type = Settings) -> list[tuple[str, str, object]]:
    """(env var, field name, default) of every field of a settings dataclass, in field order:
    what devstack/config_table.py renders as the README's configuration table."""
    return [(f.metadata["env"], f.name, f.default) for f in fields(cls)]
