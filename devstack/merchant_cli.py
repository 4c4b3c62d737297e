"""A merchant's side from the command line: submit a signed callback order, follow it, cancel it,
void or refund it.

    python -m devstack.merchant_cli pay --mobile 13900000001 --card 6221881000000011 --amount 88.00
    python -m devstack.merchant_cli status pay_...
    python -m devstack.merchant_cli cancel pay_...
    python -m devstack.merchant_cli void pay_...                     # the same settlement day
    python -m devstack.merchant_cli refund pay_... --amount 10.00    # or: refunds pay_...

Signs with the development merchant keys in VOICEPAY_VAR_DIR/keys/merchants.json, as a merchant's
own system would with its key (a seed merchant's key rotated through the admin API is no longer
that file's: sign with the key the rotation printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ivr.admin import call_api
from ivr.api.merchant_auth import signed_headers
from ivr.config import load_settings
from ivr.merchants import MerchantRegistry

# A well-formed test identity for demos (GB 11643 check digit included).
DEMO_NAME = "Zhang San"
DEMO_ID_NUMBER = "11010519491231002X"


def _request(method: str, path: str, merchant_id: str, body: dict | None = None) -> tuple[int, dict]:
    settings = load_settings()
    key = MerchantRegistry.load(settings).get(merchant_id).key
    raw = json.dumps(body).encode() if body is not None else b""
    url = f"http://{settings.http_host}:{settings.http_port}{path}"
    return call_api(url, method, signed_headers(merchant_id, key, method, path, raw),
                    raw if body is not None else None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.merchant_cli", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merchant", default="M100001")
    sub = parser.add_subparsers(dest="command", required=True)
    pay = sub.add_parser("pay", help="submit a callback order")
    pay.add_argument("--mobile", required=True)
    pay.add_argument("--card", required=True)
    pay.add_argument("--amount", required=True, help="yuan, two decimals: 88.00")
    pay.add_argument("--language", default=None, choices=["zh", "yue", "en"],
                     help="left out: the cardholder's last language, else zh")
    pay.add_argument("--description", default="Demo order")
    pay.add_argument("--notify-url")
    for name in ("status", "cancel", "void", "refunds"):
        sub.add_parser(name).add_argument("payment_id")
    refund = sub.add_parser("refund", help="refund part or all of an approved payment")
    refund.add_argument("payment_id")
    refund.add_argument("--amount", required=True, help="yuan, two decimals: 10.00")
    refund.add_argument("--reason", default="")
    args = parser.parse_args(argv)

    if args.command == "pay":
        body = {"merchant_order_id": f"CLI{int(time.time() * 1000)}", "amount": args.amount,
                "description": args.description, "card_number": args.card,
                "cardholder_name": DEMO_NAME, "id_number": DEMO_ID_NUMBER, "mobile": args.mobile,
                "mode": "callback"}
        if args.language:
            body["language"] = args.language
        if args.notify_url:
            body["notify_url"] = args.notify_url
        status, reply = _request("POST", "/v1/payments", args.merchant, body)
    elif args.command == "status":
        status, reply = _request("GET", f"/v1/payments/{args.payment_id}", args.merchant)
    elif args.command == "refunds":
        status, reply = _request("GET", f"/v1/payments/{args.payment_id}/refunds", args.merchant)
    elif args.command == "refund":
        status, reply = _request("POST", f"/v1/payments/{args.payment_id}/refunds", args.merchant,
                                 {"amount": args.amount, "reason": args.reason})
    elif args.command == "void":
        status, reply = _request("POST", f"/v1/payments/{args.payment_id}/void", args.merchant, {})
    else:
        status, reply = _request("POST", f"/v1/payments/{args.payment_id}/cancel", args.merchant, {})
    print(json.dumps(reply, indent=2, ensure_ascii=False))
    return 0 if status < 400 else 1


if __name__ == "__main__":
    sys.exit(main())
