"""The acquirer's ZM file (write then parse, fixed widths, GBK names, the trailer's checks), the
fee arithmetic in fen and its rounding edges, and a merchant's settlement record."""

from __future__ import annotations

from datetime import date, datetime, timezone
from pathlib import Path

import pytest

from ivr.settlement.fees import DEFAULT_FEE_TABLE, FeeRate, FeeTable, FeeTableError, fee_of
from ivr.settlement.ledger import MoneyItem
from ivr.settlement.reconcile import reconcile
from ivr.settlement.statement import MerchantSettlement, build_settlements, signed_yuan
from ivr.settlement.zm_file import (DETAIL, HEADER, RECORD_WIDTH, TRAILER, TxnCode, ZmFile,
                                    ZmFileError, ZmRecord)

DAY = date(2026, 11, 27)
PAN = "622188******1234"


def _record(code: TxnCode = TxnCode.PURCHASE, amount: int = 8800, rrn: str = "633114000001",
            name: str = "中国移动上海", **changes: object) -> ZmRecord:
    fields: dict[str, object] = dict(
        txn_code=code, stan="000041", transmission="1127143015", masked_pan=PAN, amount=amount,
        mcc="4814", rrn=rrn, merchant_code="M100001", terminal="VP000001", fee=31,
        settlement_amount=amount - 31, merchant_name=name)
    if code is not TxnCode.PURCHASE:
        fields.update(original_stan="000040", original_transmission="1127140000",
                      original_rrn="633114000000")
    fields.update(changes)
    return ZmRecord(**fields)  # type: ignore[arg-type]


def _file(*records: ZmRecord) -> ZmFile:
    return ZmFile(DAY, "48020000", datetime(2026, 11, 28, 0, 5, 1), records)


# --- the file ---------------------------------------------------------------------------------

def test_write_then_parse_gives_the_same_file_back() -> None:
    original = _file(_record(), _record(TxnCode.VOID, rrn="633114000002"),
                     _record(TxnCode.REFUND, amount=3000, rrn="633114000003", fee=0,
                             settlement_amount=3000, name="上海市电力公司"))
    assert ZmFile.decode(original.encode()) == original


def test_every_line_is_fixed_width_in_gbk_bytes() -> None:
    raw = _file(_record(), _record(name="浦东旅游服务")).encode()
    lines = raw.split(b"\r\n")
    assert lines[-1] == b"" and len(lines) == 5  # header, 2 details, trailer, final CRLF
    assert {len(line) for line in lines[:-1]} == {RECORD_WIDTH}
    assert RECORD_WIDTH == sum(f.width for f in DETAIL)
    assert all(sum(f.width for f in table) <= RECORD_WIDTH for table in (HEADER, TRAILER))
    # The name is GBK (two bytes a character) at its offset in the detail line.
    offset = sum(f.width for f in DETAIL[:-1])
    assert lines[1][offset:offset + 12] == "中国移动上海".encode("gbk")
    assert lines[1][offset + 12:] == b" " * 28
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    # Amounts are zero-padded to the left; the card is only ever its masked form.
    assert b"000000008800" in lines[1] and b"622188******1234   " in lines[1]


def test_a_long_chinese_name_is_cut_at_a_character_never_half_of_one() -> None:
    name = "上海浦东国际机场旅游服务有限公司第二十一分公司"  # 23 characters, 46 bytes
    raw = _file(_record(name=name)).encode()
    parsed = ZmFile.decode(raw).records[0].merchant_name
    assert parsed == name[:20] and len(parsed.encode("gbk")) == 40


def test_the_trailer_counts_and_nets_the_details() -> None:
    file = _file(_record(amount=10000, fee=35, settlement_amount=9965),
                 _record(TxnCode.REFUND, amount=2500, rrn="633114000009", fee=0,
                         settlement_amount=2500))
    trailer = file.encode().split(b"\r\n")[-2].decode("ascii")
    assert trailer.startswith("T00000002" + "10000".zfill(16) + "2500".zfill(16) + "+"
                              + "35".zfill(16) + "+" + "7465".zfill(16))


@pytest.mark.parametrize("damage", ["count", "amount", "width", "code", "gbk"])
def test_a_damaged_file_is_refused_naming_the_line_not_its_contents(damage: str) -> None:
    lines = _file(_record(), _record(rrn="633114000002")).encode().split(b"\r\n")
    if damage == "count":
        del lines[2]                                        # a detail lost: the trailer says 2
    elif damage == "amount":
        lines[1] = lines[1].replace(b"000000008800", b"000000008900")
    elif damage == "width":
        lines[1] = lines[1][:-1]
    elif damage == "code":
        lines[1] = b"DS99" + lines[1][4:]
    else:
        lines[1] = lines[1][:-2] + b"\xff\xff"
    with pytest.raises(ZmFileError) as caught:
        ZmFile.decode(b"\r\n".join(lines))
    assert "622188" not in str(caught.value) and "633114" not in str(caught.value)


def test_the_writer_refuses_a_full_card_number_and_overlong_fields() -> None:
    with pytest.raises(ZmFileError, match="masked"):
        _record(masked_pan="6221881234561234")
    with pytest.raises(ZmFileError, match="rrn"):
        _file(_record(rrn="6331140000011")).encode()
    with pytest.raises(ZmFileError, match="amount"):
        _file(_record(amount=-1)).encode()


# --- fees ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("amount, rate, expected", [
    (8800, FeeRate(60, 10), 53),     # 52.80 fen
    (2500, FeeRate(38, 5), 10),      # 9.50 fen: a half goes up
    (2499, FeeRate(38, 5), 9),       # 9.4962 fen
    (1250, FeeRate(60, 0), 8),       # 7.50 fen
    (1249, FeeRate(60, 0), 7),       # 7.494 fen
    (1000, FeeRate(60, 10), 10),     # 6 fen is under the minimum
    (3, FeeRate(60, 10), 3),         # never more than the amount
    (5_000_000, FeeRate(25, 0), 12500),
    (1, FeeRate(10_000, 0), 1),      # 100 %
    (0, FeeRate(60, 10), 0),
])
def test_fee_of_one_purchase_in_fen_rounded_half_up(amount: int, rate: FeeRate,
                                                    expected: int) -> None:
    assert fee_of(amount, rate) == expected


def test_the_shipped_fee_table_has_a_default_and_merchant_rows() -> None:
    table = FeeTable.load(DEFAULT_FEE_TABLE)
    assert table.rate("M100001") == FeeRate(38, 5)
    assert table.rate("M999999") == table.default == FeeRate(60, 10)


@pytest.mark.parametrize("text, reason", [
    ("[merchant.M1]\nrate_bp = 1\nmin_fen = 0\n", "no \\[default\\]"),
    ("[default]\nrate_bp = 1.5\nmin_fen = 0\n", "whole number"),
    ("[default]\nrate_bp = -1\nmin_fen = 0\n", "whole number"),
    ("[default]\nrate_bp = 10001\nmin_fen = 0\n", "at most"),
    ("[default]\nrate_bp = 1\n", "rate_bp and min_fen"),
    ("[default\n", "unreadable"),
])
def test_a_bad_fee_table_is_refused_saying_why(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "fees.toml"
    path.write_text(text)
    with pytest.raises(FeeTableError, match=reason):
        FeeTable.load(path)


# --- a merchant's record, and reconciliation ---------------------------------------------------

def _item(kind: str, id_: str, amount: int, rrn: str, payment_id: str | None = None,
          merchant: str = "M100001") -> MoneyItem:
    return MoneyItem(kind, id_, payment_id or id_, merchant, amount, rrn, "000001",
                     datetime(2026, 11, 27, 6, 0, tzinfo=timezone.utc))


ITEMS = [
    _item("purchase", "pay_a", 8800, "R1"),
    _item("purchase", "pay_b", 2500, "R2"),
    _item("purchase", "pay_c", 10000, "R3"),
    _item("void", "rfd_v", 2500, "R4", "pay_b"),
    _item("refund", "rfd_r", 3000, "R5", "pay_a"),
    _item("purchase", "pay_d", 1000, "R6", merchant="M100002"),
]
FEES = FeeTable(FeeRate(60, 10), {"M100001": FeeRate(38, 5), "M100002": FeeRate(25, 0)})


def test_a_merchants_record_nets_sales_voids_refunds_and_fees_in_fen() -> None:
    records = build_settlements(DAY, ITEMS, FEES)
    assert set(records) == {"M100001", "M100002"}
    m1 = records["M100001"]
    # Fees: 8800 -> 33.44 -> 33; the voided 2500 pays none; 10000 -> 38. Refunds give none back.
    assert (m1.gross, m1.gross_count, m1.voids, m1.refunds, m1.fees) == (21300, 3, 2500, 3000, 71)
    assert m1.net == 21300 - 2500 - 3000 - 71
    body = m1.to_json()
    assert body["net"] == "157.29" and body["payout_date"] == "2026-11-28"
    assert MerchantSettlement.from_json(body) == m1
    assert records["M100002"].fees == 3  # 2.5 fen rounds up
    csv = m1.to_csv().splitlines()
    assert csv[0] == "type,id,payment_id,rrn,time,amount,fee" and len(csv) == 7
    assert csv[-1].startswith("total,M100001,2026-11-27,payout 2026-11-28,,157.29,0.71")


def test_a_day_of_refunds_only_nets_negative() -> None:
    record = build_settlements(DAY, [_item("refund", "rfd_x", 500, "R9", "pay_old")], FEES)
    assert record["M100001"].net == -500 and record["M100001"].to_json()["net"] == "-5.00"
    assert signed_yuan(-1) == "-0.01" and signed_yuan(0) == "0.00"


def test_reconciliation_names_each_kind_of_difference() -> None:
    ours = ITEMS[:4]
    theirs = _file(_record(amount=8800, rrn="R1"),
                   _record(amount=2600, rrn="R2"),                  # amount differs
                   _record(TxnCode.VOID, amount=2500, rrn="R4"),
                   _record(amount=100, rrn="R7"))                    # ours has no R7
    report = reconcile(DAY, ours, theirs)                            # R3 is not in theirs
    by_rrn = {line.rrn: line.result for line in report.lines}
    assert by_rrn == {"R1": "matched", "R2": "amount_mismatch", "R3": "missing_acquirer",
                      "R4": "matched", "R7": "missing_ours"}
    body = report.to_json()
    assert not body["clean"] and body["counts"] == {"matched": 2, "missing_ours": 1,
                                                    "missing_acquirer": 1, "amount_mismatch": 1}
    assert all(line["action"] for line in body["lines"])
    assert [line["result"] for line in body["lines"]][-2:] == ["matched", "matched"]
    clean = reconcile(DAY, ITEMS[:1], _file(_record(amount=8800, rrn="R1")))
    assert clean.clean and clean.to_json()["counts"]["matched"] == 1


def test_the_readme_documents_the_layout_the_code_uses() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:-1] for line in readme.splitlines()
            if line.startswith(("| H |", "| D |", "| T |"))]
    for kind, table in (("H", HEADER), ("D", DETAIL), ("T", TRAILER)):
        widths = [w for row in rows if row[0].strip() == kind
                  for w in map(int, row[2].split("+"))]
        assert widths == [f.width for f in table], kind
    assert f"every line {RECORD_WIDTH} bytes" in readme
