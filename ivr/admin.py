"""The operator's command line for merchants: the admin API (``/v1/admin/merchants``) with the
operator token file, for people running the platform.

    voicepay-admin admit --id M200001 --name-en "Harbour Tea House" --name-zh 海港茶楼 \\
                         --mcc 5812 --max 800.00 --daily-max 2000.00
    voicepay-admin list
    voicepay-admin show M200001
    voicepay-admin suspend M200001 --reason "chargebacks"      (and: reactivate)
    voicepay-admin limits M200001 --max 500.00 [--daily-max 1500.00 | --no-daily-max]
    voicepay-admin names M200001 --yue 海港茶樓
    voicepay-admin rotate-key M200001                          (and: rotate-webhook-secret)
    voicepay-admin audit M200001
    voicepay-admin settlement run 2026-11-27 [--early]      the day's settlement (T+1 payout)
    voicepay-admin settlement show 2026-11-27               every merchant's record of the day
    voicepay-admin settlement reconcile 2026-11-27          against the acquirer's daily file
    voicepay-admin settlement report 2026-11-27             the latest reconciliation report

(``python -m ivr.admin`` is the same.) It talks to the service at VOICEPAY_HTTP_HOST:PORT (or
``--url``) with the token in VOICEPAY_VAR_DIR/keys/operator.token (or ``--token-file``), and prints
the answer as JSON. A new API key or webhook secret is printed once, as the API shows it: hand it
to the merchant, it cannot be read again. Exit status 0 on success, 1 when the API refused.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ivr.config import load_settings

__all__ = ["main", "call_api"]


def call_api(url: str, method: str, headers: dict[str, str],
             body: bytes | None = None, *, text: bool = False) -> tuple[int, Any]:
    """One HTTP request to the voicepay API: (status, JSON answer), refusals included.
    ``text``: a success is answered as text (a CSV statement), not JSON."""
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode() if text else json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="voicepay-admin", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="the service's base URL (default: from the settings)")
    parser.add_argument("--token-file", type=Path, help="the operator token file")
    sub = parser.add_subparsers(dest="command", required=True)

    admit = sub.add_parser("admit", help="admit a merchant; prints its key and webhook secret once")
    admit.add_argument("--id", help="M and six digits (default: chosen by the registry)")
    admit.add_argument("--name-en", required=True)
    admit.add_argument("--name-zh", required=True)
    admit.add_argument("--name-yue", help="Cantonese name (default: the Mandarin one is read)")
    admit.add_argument("--mcc", required=True, help="ISO 18245 merchant category code")
    admit.add_argument("--max", required=True, help="largest payment, yuan: 800.00")
    admit.add_argument("--daily-max", help="most the merchant's orders may total in a day")

    sub.add_parser("list", help="every merchant")
    for name, text in [("show", "one merchant"), ("rotate-key", "a new API key (old one: grace)"),
                       ("rotate-webhook-secret", "a new webhook secret"),
                       ("audit", "every change to a merchant")]:
        sub.add_parser(name, help=text).add_argument("merchant_id")
    for name in ("suspend", "reactivate"):
        command = sub.add_parser(name, help=f"{name} a merchant")
        command.add_argument("merchant_id")
        command.add_argument("--reason", default="")

    limits = sub.add_parser("limits", help="change a merchant's limits")
    limits.add_argument("merchant_id")
    limits.add_argument("--max")
    daily = limits.add_mutually_exclusive_group()
    daily.add_argument("--daily-max")
    daily.add_argument("--no-daily-max", action="store_true", help="remove the daily limit")

    settlement = sub.add_parser("settlement", help="a settlement day and its reconciliation")
    settlement.add_argument("action", choices=["run", "show", "reconcile", "report"])
    settlement.add_argument("day", help="YYYY-MM-DD")
    settlement.add_argument("--early", action="store_true",
                            help="run: close the day before its cut-off (drills, tests)")

    names = sub.add_parser("names", help="change a merchant's display names")
    names.add_argument("merchant_id")
    for language in ("en", "zh", "yue"):
        names.add_argument(f"--{language}", dest=f"name_{language}")
    return parser


def _settlement_request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """(method, path below /v1/admin, JSON body) for a ``settlement`` command."""
    path = f"/settlements/{args.day}"
    return {"run": ("POST", path + "/run", {"early": args.early}),
            "show": ("GET", path, None),
            "reconcile": ("POST", path + "/reconcile", None),
            "report": ("GET", path + "/reconciliation", None)}[args.action]


def _request(args: argparse.Namespace) -> tuple[str, str, dict[str, Any] | None]:
    """(method, path below /v1/admin/merchants, JSON body) for the parsed command."""
    command = args.command
    if command == "admit":
        body = {"id": args.id, "name_en": args.name_en, "name_zh": args.name_zh,
                "name_yue": args.name_yue, "mcc": args.mcc, "max_amount": args.max,
                "daily_max": args.daily_max}
        return "POST", "", {k: v for k, v in body.items() if v is not None}
    if command == "list":
        return "GET", "", None
    path = f"/{args.merchant_id}"
    if command == "show":
        return "GET", path, None
    if command == "audit":
        return "GET", path + "/audit", None
    if command in ("suspend", "reactivate"):
        return "POST", f"{path}/{command}", {"reason": args.reason} if args.reason else {}
    if command == "limits":
        body = {"max_amount": args.max} if args.max else {}
        if args.daily_max or args.no_daily_max:
            body["daily_max"] = args.daily_max  # None removes it
        return "POST", path + "/limits", body
    if command == "names":
        return "POST", path + "/names", {k: v for k, v in vars(args).items()
                                         if k.startswith("name_") and v is not None}
    return "POST", f"{path}/{command}", None  # rotate-key, rotate-webhook-secret


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = load_settings()
    base = (args.url or f"http://{settings.http_host}:{settings.http_port}").rstrip("/")
    token_file = args.token_file or settings.operator_token_file
    try:
        token = token_file.read_text(encoding="ascii").strip()
    except OSError as exc:
        print(f"voicepay-admin: cannot read the operator token ({token_file}): {exc.strerror}",
              file=sys.stderr)
        return 2
    if args.command == "settlement":
        method, path, body = _settlement_request(args)
    else:
        method, path, body = _request(args)
        path = "/merchants" + path
    try:
        status, answer = call_api(f"{base}/v1/admin{path}", method,
                                  {"Authorization": f"Bearer {token}"},
                                  json.dumps(body).encode() if body is not None else None)
    except (OSError, ValueError) as exc:
        print(f"voicepay-admin: no answer from {base}: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(answer, indent=2, ensure_ascii=False))
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
