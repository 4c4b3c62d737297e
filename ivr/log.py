"""One log format for every voicepay process (ivr service, acquirer simulator).

Timestamps are ISO-like with a dot before the milliseconds; the line says which call, payment and
state (never card data), so a failing call can be followed from the logs alone.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%d %H:%M:%S",
        stream=sys.stderr,
    )
    # aiohttp's access log would print query strings; ours carry no card data, but keep it quiet.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
