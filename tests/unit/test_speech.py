"""Amounts and dates read aloud: the exact prompt sequence for many amounts, in every language."""

from __future__ import annotations

import doctest
from datetime import date

import pytest

import ivr.speech
from ivr.prompts import Manifest
from ivr.speech import LANGUAGES, MAX_AMOUNT_MINOR, amount_prompts, date_prompts

# Short spellings for the tables: "1" is num_1, "百" is num_bai, "元" currency_yuan, and so on.
_EN = {"hundred": "num_hundred", "thousand": "num_thousand", "million": "num_million", "and": "word_and",
       "yuan": "currency_yuan", "fen": "currency_fen"}
_ZH = {"十": "num_shi", "百": "num_bai", "千": "num_qian", "万": "num_wan", "两": "num_liang",
       "元": "currency_yuan", "角": "currency_jiao", "分": "currency_fen"}


def en(text: str) -> list[str]:
    return [_EN.get(word, f"num_{word}") for word in text.split()]


def zh(text: str) -> list[str]:
    return [_ZH.get(char, f"num_{char}") for char in text]


ENGLISH = [
    (0, "0 yuan"),
    (5, "5 fen"),
    (10, "10 fen"),
    (99, "90 9 fen"),
    (100, "1 yuan"),
    (105, "1 yuan and 5 fen"),
    (1000, "10 yuan"),
    (1100, "11 yuan"),
    (1500, "15 yuan"),
    (1900, "19 yuan"),
    (2000, "20 yuan"),
    (2100, "20 1 yuan"),
    (2050, "20 yuan and 50 fen"),
    (9999, "90 9 yuan and 90 9 fen"),
    (10000, "1 hundred yuan"),
    (10500, "1 hundred and 5 yuan"),
    (11000, "1 hundred and 10 yuan"),
    (12300, "1 hundred and 20 3 yuan"),
    (20000, "2 hundred yuan"),
    (100000, "1 thousand yuan"),
    (100500, "1 thousand and 5 yuan"),
    (101000, "1 thousand and 10 yuan"),
    (110000, "1 thousand 1 hundred yuan"),
    (123456, "1 thousand 2 hundred and 30 4 yuan and 50 6 fen"),
    (1000000, "10 thousand yuan"),
    (1000500, "10 thousand and 5 yuan"),
    (1234567, "12 thousand 3 hundred and 40 5 yuan and 60 7 fen"),
    (10000000, "1 hundred thousand yuan"),
    (10001000, "1 hundred thousand and 10 yuan"),
    (100000000, "1 million yuan"),
    (100000001, "1 million yuan and 1 fen"),
    (100050000, "1 million 5 hundred yuan"),
    (100000500, "1 million and 5 yuan"),
    (123456789, "1 million 2 hundred and 30 4 thousand 5 hundred and 60 7 yuan and 80 9 fen"),
    (1200000000, "12 million yuan"),
    (MAX_AMOUNT_MINOR,
     "90 9 million 9 hundred and 90 9 thousand 9 hundred and 90 9 yuan and 90 9 fen"),
]

MANDARIN = [
    (0, "0元"),
    (5, "5分"),
    (10, "1角"),
    (20, "2角"),
    (55, "5角5分"),
    (100, "1元"),
    (200, "2元"),  # 二元: 两 only multiplies 百, 千 and 万
    (105, "1元05分"),  # 一元零五分
    (150, "1元5角"),
    (1000, "十元"),
    (1500, "十5元"),
    (1200, "十2元"),  # 十二
    (2000, "2十元"),  # 二十
    (2050, "2十元5角"),
    (2005, "2十元05分"),
    (2055, "2十元5角5分"),
    (9999, "9十9元9角9分"),
    (10000, "1百元"),
    (10500, "1百05元"),  # 一百零五
    (11000, "1百1十元"),  # 一百一十: 一 kept when 十 does not lead
    (11500, "1百1十5元"),
    (20000, "两百元"),
    (22200, "两百2十2元"),
    (100000, "1千元"),
    (100500, "1千05元"),  # 一千零五
    (101000, "1千01十元"),  # 一千零一十
    (110000, "1千1百元"),
    (120500, "1千两百05元"),  # 一千两百零五
    (200000, "两千元"),
    (123456, "1千两百3十4元5角6分"),
    (1000000, "1万元"),
    (1000500, "1万05元"),  # 一万零五
    (1050000, "1万05百元"),  # 一万零五百
    (1500000, "1万5千元"),
    (2000000, "两万元"),
    (2200000, "两万两千元"),
    (1234567, "1万两千3百4十5元6角7分"),
    (10000000, "十万元"),
    (10050000, "十万05百元"),  # 十万零五百
    (12000000, "十2万元"),  # 十二万, not 十两万
    (20000000, "2十万元"),  # 二十万
    (22000000, "2十2万元"),
    (100000000, "1百万元"),
    (100100000, "1百万1千元"),  # a group's trailing zeros are not read
    (101010100, "1百01万01百01元"),  # 一百零一万零一百零一
    (120000000, "1百2十万元"),
    (200000000, "两百万元"),
    (1000000000, "1千万元"),
    (1000000001, "1千万元01分"),
    (2000000000, "两千万元"),
    (1002000000, "1千02万元"),  # 一千零二万
    (MAX_AMOUNT_MINOR, "9千9百9十9万9千9百9十9元9角9分"),
]


def heard(names: list[str], language: str) -> str:
    """What the listener hears: the manifest's texts of the names (English words spaced)."""
    texts = Manifest.load().texts[language]
    return (" " if language == "en" else "").join(texts[name] for name in names)


# The tricky amounts, in every language, as the words said.
TRICKY = [
    (5, {"zh": "五分", "yue": "五分", "en": "five fen"}),
    (1000, {"zh": "十元", "yue": "十元", "en": "ten yuan"}),
    (100110, {"zh": "一千零一元一角", "yue": "一千零一元一角",
              "en": "one thousand and one yuan and ten fen"}),
    (2000000, {"zh": "两万元", "yue": "兩萬元", "en": "twenty thousand yuan"}),
    (10001001, {"zh": "十万零一十元零一分", "yue": "十萬零一十元零一分",
                "en": "one hundred thousand and ten yuan and one fen"}),
]


@pytest.mark.parametrize(("amount", "said"), TRICKY, ids=[str(a) for a, _ in TRICKY])
@pytest.mark.parametrize("language", LANGUAGES)
def test_tricky_amounts_in_every_language(amount: int, said: dict[str, str], language: str) -> None:
    assert heard(amount_prompts(amount, language), language) == said[language]


DATES = [
    (date(2026, 11, 27), {"zh": "二零二六年十一月二十七日", "yue": "二零二六年十一月二十七日",
                          "en": "November twenty seventh two thousand and twenty six"}),
    (date(2010, 1, 1), {"zh": "二零一零年一月一日", "yue": "二零一零年一月一日",
                        "en": "January first two thousand and ten"}),
    (date(2031, 12, 31), {"zh": "二零三一年十二月三十一日", "yue": "二零三一年十二月三十一日",
                          "en": "December thirty first two thousand and thirty one"}),
    (date(2029, 10, 20), {"zh": "二零二九年十月二十日", "yue": "二零二九年十月二十日",
                          "en": "October twentieth two thousand and twenty nine"}),
]


@pytest.mark.parametrize(("day", "said"), DATES, ids=[str(d) for d, _ in DATES])
@pytest.mark.parametrize("language", LANGUAGES)
def test_dates_in_every_language(day: date, said: dict[str, str], language: str) -> None:
    assert heard(date_prompts(day, language), language) == said[language]


def test_every_day_of_a_leap_year_has_its_prompts() -> None:
    manifest = Manifest.load()
    for language in LANGUAGES:
        for ordinal in range(date(2028, 1, 1).toordinal(), date(2028, 12, 31).toordinal() + 1):
            assert set(date_prompts(date.fromordinal(ordinal), language)) <= set(
                manifest.texts[language])


def test_reference_numbers_read_one_as_yao_in_mandarin_only() -> None:
    texts = Manifest.load().texts
    assert [texts[lang]["digit_1"] for lang in ("zh", "yue", "en")] == ["幺", "一", "one"]


def test_cantonese_reads_the_mandarin_names() -> None:
    for amount in range(0, 3_000_000, 997):
        assert amount_prompts(amount, "yue") == amount_prompts(amount, "zh")


@pytest.mark.parametrize(("amount", "reading"), ENGLISH, ids=[str(a) for a, _ in ENGLISH])
def test_english(amount: int, reading: str) -> None:
    assert amount_prompts(amount, "en") == en(reading)


@pytest.mark.parametrize(("amount", "reading"), MANDARIN, ids=[str(a) for a, _ in MANDARIN])
def test_mandarin(amount: int, reading: str) -> None:
    assert amount_prompts(amount, "zh") == zh(reading)


def test_the_table_spellings() -> None:
    # The short spellings mean what the tests say they mean.
    assert en("1 thousand and 5 yuan") == ["num_1", "num_thousand", "word_and", "num_5", "currency_yuan"]
    assert zh("1千05元") == ["num_1", "num_qian", "num_0", "num_5", "currency_yuan"]


def test_mandarin_zero_and_liang_rules_in_bulk() -> None:
    for yuan in [*range(0, 100_000, 7), *range(0, 99_999_999, 7_919)]:
        names = amount_prompts(yuan * 100, "zh")
        assert names[-1] == "currency_yuan"
        body = names[:-1]
        # Never two 零 in a row, never a trailing 零 (0 itself excepted), never 一十 leading.
        assert all(not (a == b == "num_0") for a, b in zip(body, body[1:]))
        assert yuan == 0 or body[-1] != "num_0"
        assert body[:2] != ["num_1", "num_shi"]
        # 两 only right before 百, 千 or 万; 二 never there.
        for i, name in enumerate(body):
            following = body[i + 1] if i + 1 < len(body) else None
            if name == "num_liang":
                assert following in ("num_bai", "num_qian", "num_wan")
            if name == "num_2":
                # 二 before 万 only as the units of a larger 万 group: 十二万, 一百零二万.
                assert following not in ("num_bai", "num_qian")
                assert following != "num_wan" or body[i - 1] in ("num_shi", "num_0")


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_name_is_in_the_manifest(language: str) -> None:
    known = set(Manifest.load().texts[language])
    amounts = [a for a, _ in ENGLISH + MANDARIN] + list(range(250_000)) + list(range(0, MAX_AMOUNT_MINOR, 9_876_541))
    used: set[str] = set()
    for amount in amounts:
        used.update(amount_prompts(amount, language))
    assert used <= known, used - known


def test_both_languages_use_their_own_words() -> None:
    english = {n for a in range(0, 300_000, 37) for n in amount_prompts(a * 17, "en")}
    mandarin = {n for a in range(0, 300_000, 37) for n in amount_prompts(a * 17, "zh")}
    assert not english & {"num_shi", "num_bai", "num_qian", "num_wan", "num_liang", "currency_jiao"}
    assert not mandarin & {"num_hundred", "num_thousand", "num_million", "word_and", "num_10", "num_20"}


@pytest.mark.parametrize(
    ("amount", "language", "message"),
    [
        (-1, "en", "from 0 to"),
        (MAX_AMOUNT_MINOR + 1, "zh", "from 0 to"),
        (1.5, "en", "integer"),
        (True, "en", "integer"),
        ("100", "zh", "integer"),
        (100, "fr", "no amount reading for language 'fr'"),
    ],
)
def test_errors(amount: object, language: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        amount_prompts(amount, language)  # type: ignore[arg-type]


def test_doctests() -> None:
    result = doctest.testmod(ivr.speech)
    assert result.attempted >= 6 and result.failed == 0
