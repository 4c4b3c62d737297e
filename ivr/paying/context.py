"""What every call flow needs, built once by the service and passed to each call."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.agi.channel import AgiChannel
from ivr.oneline.switch import OnelineSwitch
from ivr.config import Settings
from ivr.merchants import UnknownMerchant
from ivr.merchant_store import MerchantStore
from ivr.crypto.keyring import KeySource, KeyVersion, as_key_source
from ivr.crypto.pan_vault import PanVault
from ivr.hostlink.bin_table import PublishedBins
from ivr.paying.ask_again import AskAgain, fields_asked
from ivr.paying.authorization import Authorizer
from ivr.paying.keypad import Keypad
from ivr.prompts import Manifest, PromptPath, Prompts
from ivr.payments.store import Payment, PaymentStore
from ivr.spoken_names import SpokenNames
from ivr.risk.gate import RiskGate

__all__ = ["FlowContext"]


@dataclass
class FlowContext:
    settings: Settings
    store: PaymentStore
    vault: PanVault
    pek: bytes | KeySource  # the PIN encryption key's ring (a watched key file), or one key
    authorizer: Authorizer
    manifest: Manifest
    oneline: OnelineSwitch | None = None
    merchants: MerchantStore | None = None
    names: SpokenNames | None = None
    # Risk at order time (self-service) and the ID step-up (callback, one-line); the service
    # always sets both. Without them, self-service refuses to take a payment.
    risk: RiskGate | None = None
    bins: PublishedBins | None = None
    # The agent's "ask again" requests for a one-line payment's fields (ivr/paying/ask_again.py).
    ask_again: AskAgain | None = None

    def pin_key(self) -> KeyVersion:
        """The PEK version a new PIN block is made under; its id travels with the block."""
        return as_key_source(self.pek, "pek")().current

    def prompts(self, language: str | None = None) -> Prompts:
        return Prompts(self.manifest, self.settings.sounds_path, language or self.settings.language)

    async def merchant_name(self, merchant_id: str, prompts: Prompts) -> PromptPath:
        """The prompt that says the merchant's name in the prompts' language, synthesized at run
        time (ivr/spoken_names.py); "the merchant" when that is not possible."""
        path = None
        if self.merchants is not None and self.names is not None:
            try:
                merchant = await self.merchants.get(merchant_id)
            except UnknownMerchant:
                merchant = None
            if merchant is not None:
                path = await self.names.prompt(merchant.display_name(prompts.language),
                                               prompts.language)
        return PromptPath(path or prompts["merchant_generic"])

    async def asked_again(self, payment: Payment, *fields: str) -> str | None:
        """Which of ``fields`` the agent asked the caller for again, consuming the request.

        Only a one-line payment's fields can be asked again (``fields_asked``); for any other
        payment no request can exist and Redis is not asked: a PIN keyed a moment ago is not
        kept in clear for a round trip that cannot change it.
        """
        if self.ask_again is None or not fields_asked(payment):
            return None
        return await self.ask_again.taken(payment.id, fields)

    async def close_ask_again(self, payment: Payment) -> None:
        """The payment is authorizing: no field can be asked again any more."""
        if self.ask_again is not None and fields_asked(payment):
            await self.ask_again.close(payment.id)

    def keypad(self, call: AgiChannel, prompts: Prompts) -> Keypad:
        return Keypad(call, prompts, self.settings.first_digit_timeout_ms,
                      self.settings.max_entry_attempts)
