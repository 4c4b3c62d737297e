"""The acquirer simulator's own settings: where it listens, its keys and files, its test delays.

Read from the environment by the product's one reader (``ivr.config.load_from_env``); the ivr
service never sees these, only the host and port it dials (``Settings.acquirer_host``/``_port``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ivr.config import REPO_ROOT, load_from_env

__all__ = ["AcquirerSettings", "load_acquirer_settings"]


@dataclass(frozen=True)
class AcquirerSettings:
    var_dir: Path = field(metadata={"env": "VOICEPAY_VAR_DIR"}, default=REPO_ROOT / "var")
    host: str = field(metadata={"env": "VOICEPAY_ACQUIRER_HOST"}, default="127.0.0.1")
    port: int = field(metadata={"env": "VOICEPAY_ACQUIRER_PORT"}, default=8583)
    # How long the simulated "issuer unavailable" card keeps the acquirer silent.
    issuer_delay: float = field(metadata={"env": "VOICEPAY_ISSUER_DELAY"}, default=8.0)
    log_level: str = field(metadata={"env": "VOICEPAY_LOG_LEVEL"}, default="INFO")
    # The settlement day's cut-off, the same variable as the platform's: the two agree by contract
    # on which day a transaction belongs to (simulators/acquirer/daily_file.py).
    settlement_cutoff: str = field(metadata={"env": "VOICEPAY_SETTLEMENT_CUTOFF"},
                                   default="23:00 Asia/Shanghai")

    @property
    def keys_dir(self) -> Path:
        return self.var_dir / "keys"

    @property
    def keys_file(self) -> Path:
        return self.keys_dir / "acquirer.json"

    @property
    def files_dir(self) -> Path:
        """Issued card book, transaction journal and the published BIN table."""
        return self.var_dir / "acquirer"

    @property
    def daily_files_dir(self) -> Path:
        """Where the daily reconciliation files for the platform are published."""
        return self.files_dir / "reconciliation"

    @property
    def bin_table_file(self) -> Path:
        return self.files_dir / "bin_table.json"


def load_acquirer_settings(**overrides: object) -> AcquirerSettings:
    return load_from_env(AcquirerSettings, **overrides)
