"""Merchant names as prompts: the callback reads out who is asking for the money.

The names come from the merchant registry, not sounds/manifest.toml, so adding a merchant needs
no prompt edit: `make run` renders `merchant_<id>` for each language like any other prompt.
"""

from __future__ import annotations

from ivr.config import Settings
from ivr.merchants import MerchantRegistry
from ivr.prompts import Manifest

__all__ = ["merchant_prompt_name", "manifest_with_merchants"]


def merchant_prompt_name(merchant_id: str) -> str:
    return f"merchant_{merchant_id}"


def manifest_with_merchants(settings: Settings) -> Manifest:
    registry = MerchantRegistry.load(settings)
    names = {"en": {}, "zh": {}}  # type: dict[str, dict[str, str]]
    for merchant_id in registry:
        merchant = registry.get(merchant_id)
        names["en"][merchant_prompt_name(merchant.id)] = merchant.name_en
        names["zh"][merchant_prompt_name(merchant.id)] = merchant.name_zh
    return Manifest.load().with_texts(names)
