"""What every call flow needs, built once by the service and passed to each call."""

from __future__ import annotations

from dataclasses import dataclass

from ivr.agi.channel import AgiChannel
from ivr.oneline.switch import OnelineSwitch
from ivr.config import Settings
from ivr.merchants import UnknownMerchant
from ivr.merchant_store import MerchantStore
from ivr.crypto.pan_vault import PanVault
from ivr.hostlink.bin_table import PublishedBins
from ivr.paying.authorization import Authorizer
from ivr.paying.keypad import Keypad
from ivr.prompts import Manifest, PromptPath, Prompts
from ivr.payments.store import PaymentStore
from ivr.spoken_names import SpokenNames
from ivr.risk.gate import RiskGate

__all__ = ["FlowContext"]


@dataclass
class FlowContext:
    settings: Settings
    store: PaymentStore
    vault: PanVault
    pek: bytes
    authorizer: Authorizer
    manifest: Manifest
    oneline: OnelineSwitch | None = None
    merchants: MerchantStore | None = None
    names: SpokenNames | None = None
    # Risk at order time (self-service) and the ID step-up (callback, one-line); the service
    # always sets both. Without them, self-service refuses to take a payment.
    risk: RiskGate | None = None
    bins: PublishedBins | None = None

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

    def keypad(self, call: AgiChannel, prompts: Prompts) -> Keypad:
        return Keypad(call, prompts, self.settings.first_digit_timeout_ms,
                      self.settings.max_entry_attempts)
