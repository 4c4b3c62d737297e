"""Amounts and dates read aloud, as lists of prompt names, in Mandarin, Cantonese and English.

The names are those of ``sounds/manifest.toml`` (every language has every name); a flow turns
them into paths with :class:`ivr.prompts.Prompts` and plays them in order, so everything read
out is a pre-generated file (or a professional recording that replaced it).

English reads yuan and fen, British style, with "and" after "hundred", before a last group under a
hundred, and between yuan and fen; a zero fen part is not read, nor a zero yuan part before fen
("five fen", as one says "five pence", not "zero yuan and five fen"):

    >>> amount_prompts(123456, "en")  # doctest: +NORMALIZE_WHITESPACE
    ['num_1', 'num_thousand', 'num_2', 'num_hundred', 'word_and', 'num_30', 'num_4', 'currency_yuan',
     'word_and', 'num_50', 'num_6', 'currency_fen']
    >>> amount_prompts(5, "en")
    ['num_5', 'currency_fen']

Mandarin reads 元, 角 and 分 with the usual rules: 十 without 一 when it leads (十五), one 零 for
a run of zeros inside a number or before a group that does not fill its place (一千零五, 一万零五百),
no 零 for trailing zeros (一万), and 两 for a 2 that multiplies 百, 千 or 万 (两百, 两千, 两万, 一千两百)
but 二 elsewhere (二十, 十二, 二元, 二角):

    >>> amount_prompts(2050, "zh")
    ['num_2', 'num_shi', 'currency_yuan', 'num_5', 'currency_jiao']
    >>> amount_prompts(100500, "zh")
    ['num_1', 'num_qian', 'num_0', 'num_5', 'currency_yuan']

两万元, not 二万元, for ¥20,000: in speech 两 is the form before the units 百, 千 and 万 (the
《现代汉语八百词》 entry for 两; 二万 is heard only when reading written figures digit-exact).

Cantonese (``yue``) says the same characters with the same rules, 兩 before 百/千/萬 included,
so it reads the same names, which the yue voice speaks in Cantonese. We read the formal
元/角/分 (jyun4/gok3/fan1), as banks' phone services do, not the colloquial 蚊/毫/仙: the
amount must sound like the one on the receipt. Chinese-script dates read formally too:
二〇二六年十一月二十七日 (日, not the colloquial 號).

Amounts go from 0 to 99,999,999.99 yuan (9,999,999,999 fen); anything else is a ValueError.

Dates: Chinese reads the year digit by digit (二〇二六年: ``num_N``, never the 幺 of
``digit_1``), then the month and the day as numbers; English says "November twenty-seventh, two
thousand and twenty-six":

    >>> date_prompts(date(2026, 11, 27), "zh")  # doctest: +NORMALIZE_WHITESPACE
    ['num_2', 'num_0', 'num_2', 'num_6', 'word_year', 'month_11', 'num_2', 'num_shi', 'num_7',
     'word_day']
    >>> date_prompts(date(2026, 11, 27), "en")  # doctest: +NORMALIZE_WHITESPACE
    ['month_11', 'num_20', 'ord_7', 'num_2', 'num_thousand', 'word_and', 'num_20', 'num_6']
"""

from __future__ import annotations

from datetime import date

__all__ = ["MAX_AMOUNT_MINOR", "LANGUAGES", "DEFAULT_LANGUAGE", "amount_prompts", "date_prompts"]

MAX_AMOUNT_MINOR = 99_999_999_99
# Every language a payment may be in: Mandarin, Cantonese, English. Mandarin is the default.
LANGUAGES = ("zh", "yue", "en")
DEFAULT_LANGUAGE = "zh"


def amount_prompts(amount_minor: int, language: str) -> list[str]:
    """The prompt names that read ``amount_minor`` fen as a CNY amount in ``language``."""
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int):
        raise ValueError("amount must be an integer number of fen")
    if not 0 <= amount_minor <= MAX_AMOUNT_MINOR:
        raise ValueError(f"amount must be from 0 to {MAX_AMOUNT_MINOR} fen")
    yuan, fen = divmod(amount_minor, 100)
    if language == "en":
        return _english(yuan, fen)
    if language in ("zh", "yue"):
        return _chinese(yuan, fen)
    raise ValueError(f"no amount reading for language {language!r}")


def date_prompts(day: date, language: str) -> list[str]:
    """The prompt names that read ``day`` in ``language``."""
    if language == "en":
        return [f"month_{day.month}", *_english_ordinal(day.day), *_english_number(day.year)]
    if language in ("zh", "yue"):
        return ([f"num_{d}" for d in f"{day.year:04d}"] + ["word_year", f"month_{day.month}"]
                + _chinese_number(day.day) + ["word_day"])
    raise ValueError(f"no date reading for language {language!r}")


# --- English ---------------------------------------------------------------------------------


def _english(yuan: int, fen: int) -> list[str]:
    if yuan == 0 and fen:
        return [*_english_number(fen), "currency_fen"]
    names = _english_number(yuan) + ["currency_yuan"]
    if fen:
        names += ["word_and", *_english_number(fen), "currency_fen"]
    return names


def _english_ordinal(n: int) -> list[str]:
    """1st to 31st: first..nineteenth, twentieth, thirtieth are prompts; 21st is twenty + first."""
    if n < 20 or n % 10 == 0:
        return [f"ord_{n}"]
    tens, ones = divmod(n, 10)
    return [f"num_{tens * 10}", f"ord_{ones}"]


def _english_number(n: int) -> list[str]:
    """0 to 99,999,999 in words: groups of three digits with million and thousand."""
    if n == 0:
        return ["num_0"]
    millions, rest = divmod(n, 1_000_000)
    thousands, units = divmod(rest, 1000)
    names: list[str] = []
    if millions:
        names += _english_below_thousand(millions) + ["num_million"]
    if thousands:
        names += _english_below_thousand(thousands) + ["num_thousand"]
    if units:
        if names and units < 100:
            names.append("word_and")  # one thousand and five
        names += _english_below_thousand(units)
    return names


def _english_below_thousand(n: int) -> list[str]:
    hundreds, rest = divmod(n, 100)
    names: list[str] = []
    if hundreds:
        names += [f"num_{hundreds}", "num_hundred"]
        if rest:
            names.append("word_and")  # two hundred and thirty
    if rest:
        names += _english_below_hundred(rest)
    return names


def _english_below_hundred(n: int) -> list[str]:
    if n < 20:
        return [f"num_{n}"]
    tens, ones = divmod(n, 10)
    return [f"num_{tens * 10}"] + ([f"num_{ones}"] if ones else [])


# --- Mandarin and Cantonese --------------------------------------------------------------------------------

_ZH_UNITS = {3: "num_qian", 2: "num_bai", 1: "num_shi"}


def _chinese(yuan: int, fen: int) -> list[str]:
    jiao, fen = divmod(fen, 10)
    if yuan == 0 and (jiao or fen):
        names: list[str] = []  # 五角五分, 五分: no 零元
    else:
        names = _chinese_number(yuan) + ["currency_yuan"]
    if jiao:
        names += [f"num_{jiao}", "currency_jiao"]
    if fen:
        if yuan and not jiao:
            names.append("num_0")  # 二十元零五分
        names += [f"num_{fen}", "currency_fen"]
    return names


def _chinese_number(n: int) -> list[str]:
    """0 to 99,999,999: the 万 group, then the units group, each read by _chinese_group."""
    if n == 0:
        return ["num_0"]
    wan, units = divmod(n, 10_000)
    names: list[str] = []
    if wan:
        names += ["num_liang"] if wan == 2 else _chinese_group(wan, leading=True)
        names.append("num_wan")
    if units:
        if wan and units < 1000:
            names.append("num_0")  # 一万零五, 十万零五百: the units group does not fill 千
        names += _chinese_group(units, leading=not wan)
    return names


def _chinese_group(n: int, *, leading: bool) -> list[str]:
    """1 to 9999 in 千/百/十 and digits; ``leading`` if nothing is read before it."""
    digits = [(n // 10**place) % 10 for place in (3, 2, 1, 0)]
    names: list[str] = []
    pending_zero = False
    for place, digit in zip((3, 2, 1, 0), digits, strict=True):
        if digit == 0:
            pending_zero = bool(names)  # a zero counts only after something was read
            continue
        if pending_zero:
            names.append("num_0")
            pending_zero = False
        if place == 1 and digit == 1 and leading and not names:
            names.append("num_shi")  # 十, 十五: no 一 when 十 leads the number
            continue
        if place >= 2 and digit == 2:
            names.append("num_liang")  # 两百, 两千
        else:
            names.append(f"num_{digit}")
        if place:
            names.append(_ZH_UNITS[place])
    return names
