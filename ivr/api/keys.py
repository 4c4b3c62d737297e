"""Typed application keys: what the service puts in the aiohttp app for handlers to use."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web

from ivr.acquirer.client import AcquirerClient
from ivr.ami.client import AmiClient
from ivr.config import Settings
from ivr.store.payments import PaymentStore

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", PaymentStore)
ACQUIRER = web.AppKey("acquirer", AcquirerClient)
AMI = web.AppKey("ami", AmiClient)
