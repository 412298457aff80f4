"""One catalogue per language: same keys, same placeholders, the formats of the contract."""

from __future__ import annotations

from datetime import UTC, date, datetime

from dialogs.catalogue import TABLES, placeholders, texts


def test_languages_have_the_same_keys_and_placeholders() -> None:
    pl, en = TABLES["pl"], TABLES["en"]
    assert set(pl) == set(en)
    for key in pl:
        assert placeholders(pl[key]) == placeholders(en[key]), key
        assert pl[key].strip() and en[key].strip(), key


def test_money_and_dates() -> None:
    t = texts("pl")
    assert t.money(1230) == "12,30 zł"
    assert t.money(5) == "0,05 zł"
    assert t.money(-250) == "-2,50 zł"
    assert texts("en").money(123456) == "1 234,56 zł"
    assert t.money(9999999) == "99 999,99 zł" and t.amount(12900) == "129,00"
    assert t.number("48601234567") == "601 234 567" and t.number("447700900123") == "447700900123"


def test_polish_plural_forms_come_from_the_catalogue() -> None:
    t = texts("pl")
    forms = {n: t.count(n, "points") for n in (0, 1, 2, 4, 5, 11, 12, 14, 21, 22, 25, 104, 112)}
    assert forms == {
        0: "0 punktów", 1: "1 punkt", 2: "2 punkty", 4: "4 punkty", 5: "5 punktów",
        11: "11 punktów", 12: "12 punktów", 14: "14 punktów", 21: "21 punktów",
        22: "22 punkty", 25: "25 punktów", 104: "104 punkty", 112: "112 punktów",
    }  # fmt: skip
    assert t.count(7, "digits") == "7 cyfr" and t.count(3, "digits") == "3 cyfry"
    assert texts("en").count(1, "points") == "1 point" and texts("en").count(3, "points") == (
        "3 points"
    )
    assert t.date(date(2026, 11, 24)) == "24.11.2026"
    assert t.when(datetime(2026, 11, 24, 13, 5, tzinfo=UTC)) == "14:05 24.11.2026"


def test_unknown_language_falls_back_to_polish_and_missing_params_are_blank() -> None:
    assert texts("de").lang == "pl"
    assert texts("pl")("code.wrong") == "Błędny kod abonencki. Pozostałe próby: ."


def test_texts_used_by_the_portal() -> None:
    """gateway/app.py words the portal's password SMS with the key ``password``."""
    for lang in ("pl", "en"):
        text = texts(lang)("password", password="Ab3dEf7h")
        assert "Ab3dEf7h" in text and "10 min" in text


def test_an_abbreviation_ending_a_sentence_takes_one_stop() -> None:
    t = texts("pl")
    monthly = t("fee.monthly", amount=t.money(500))
    quote = t("fav.3ija.quote", numbers="601 234 567", fee=t.money(0), monthly=monthly)
    assert quote.endswith("zł/mies.") and ".." not in quote
    assert t("fav.3ija.quote", numbers="1", fee="0", monthly="").endswith("0.")


def test_format_map_renders_as_string_formatter_did() -> None:
    """Texts uses str.format_map; every template renders as string.Formatter rendered it,
    with all parameters given and with none (missing ones blank)."""
    import string

    from dialogs.catalogue import _DOUBLE_STOP, Texts, _Blank

    formatter = string.Formatter()
    for lang, table in TABLES.items():
        texts = Texts(lang)
        for key, template in table.items():
            full = {name: f"<{name}>" for name in placeholders(template)}
            for params in (full, {}):
                want = formatter.vformat(template, (), _Blank(params))
                assert texts(key, **params) == _DOUBLE_STOP.sub(".", want), (lang, key)
