# ruff: noqa: RUF001  (Russian and Chinese text, with Cyrillic letters and full-width commas)
"""Naming and detecting a file's text encoding (shared/text_encoding.py)."""

from __future__ import annotations

import pytest

from shared.text_encoding import EncodingUndetermined, detect, lookup

# Realistic rows (names, cities, prose) in the scripts of each legacy encoding.
ROWS = {
    "ru": [
        ("Иван Петров", "Москва", "Привет, как дела? Это тестовая запись о клиенте."),
        ("Мария Смирнова", "Санкт-Петербург", "Заказ доставлен вовремя, спасибо."),
        ("Алексей Кузнецов", "Новосибирск", "Просьба перезвонить после обеда."),
    ],
    "ja": [
        ("山田太郎", "東京", "お世話になっております。注文の件でご連絡しました。"),
        ("佐藤花子", "大阪", "商品は無事に届きました。ありがとうございます。"),
        ("鈴木一郎", "名古屋", "来週の打ち合わせの日程を調整させてください。"),
    ],
    "zh": [
        ("王伟", "北京", "您好，我们已经收到您的订单，将尽快发货。"),
        ("李娜", "上海", "请确认收货地址是否正确。"),
        ("张敏", "广州", "感谢您的耐心等待，祝您生活愉快。"),
    ],
    "tw": [
        ("陳志明", "台北", "您好，我們已經收到您的訂單，將盡快出貨。"),
        ("林美玲", "高雄", "請確認收貨地址是否正確。"),
        ("黃建國", "台中", "感謝您的耐心等待，祝您生活愉快。"),
    ],
    "ko": [
        ("김민수", "서울", "안녕하세요, 주문하신 상품이 발송되었습니다."),
        ("이지은", "부산", "배송 주소를 다시 확인해 주시기 바랍니다."),
        ("박서준", "대구", "기다려 주셔서 감사합니다. 좋은 하루 되세요."),
    ],
    "pl": [
        ("Łukasz Wójcik", "Łódź", "Zamówienie zostało wysłane. Dziękujemy za cierpliwość."),
        ("Zofia Kowalczyk", "Gdańsk", "Proszę o potwierdzenie adresu dostawy."),
        ("Małgorzata Ślęzak", "Wrocław", "Faktura została wystawiona ponownie."),
    ],
    "cs": [
        ("Jiří Novák", "Praha", "Objednávka byla odeslána, děkujeme za trpělivost."),
        ("Kateřina Dvořáková", "Brno", "Prosím o potvrzení doručovací adresy."),
        ("Tomáš Černý", "Ostrava", "Zákazník žádá o zpětné zavolání odpoledne."),
    ],
    "fr": [
        ("François Lefèvre", "Besançon", "Commande expédiée, merci de votre patience."),
        ("Hélène Müller", "Zürich", "Prière de confirmer l'adresse de livraison."),
        ("José Martínez", "Málaga", "Le client souhaite être rappelé après le déjeuner."),
    ],
    "fr15": [
        ("Œuvre d'Éloïse", "Nancy", "Le cœur du dossier : 5 € par mois, payé à l'avance."),
        ("Chloé Dubois", "Orléans", "Facture réémise : 12 € au total."),
        ("Zoé Lefèvre", "Reims", "Sœur de la cliente précédente."),
    ],
}

# (codec the file is written in, its rows, the encoding tidegate must name)
FILES = [
    ("koi8-r", "ru", "koi8-r"),
    ("cp1251", "ru", "windows-1251"),
    ("shift_jis", "ja", "shift_jis"),
    ("euc-jp", "ja", "euc_jp"),
    ("gb18030", "zh", "gb18030"),
    ("big5", "tw", "big5"),
    ("euc-kr", "ko", "euc_kr"),
    ("cp1250", "pl", "windows-1250"),
    ("iso8859-2", "cs", "iso-8859-2"),
    ("cp1252", "fr", "windows-1252"),
    ("latin-1", "fr", "windows-1252"),  # its superset: the same text
    ("iso8859-15", "fr15", "iso-8859-15"),
]


def csv_text(lang: str, count: int) -> str:
    rows = ROWS[lang]
    lines = ["id,email,name,city,note"]
    for i in range(1, count + 1):
        name, city, note = rows[i % len(rows)]
        lines.append(f'{i},user{i}@example.com,{name},{city},"{note}"')
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("count", [3, 20, 500])
@pytest.mark.parametrize(("codec", "lang", "name"), FILES)
def test_legacy_files_are_detected_with_their_exact_text(
    codec: str, lang: str, name: str, count: int
) -> None:
    text = csv_text(lang, count)
    data = text.encode(codec)
    decision = detect(data[:65_536], final=len(data) <= 65_536)
    assert decision is not None
    assert (decision.encoding.name, decision.decided_by) == (name, "detected")
    assert data.decode(decision.encoding.codec) == text
    assert decision.confidence is not None and decision.confidence > 0.9


def test_utf8_and_byte_order_marks_decide_without_the_detector() -> None:
    assert detect("Zoë,李\n".encode(), final=True) is not None
    utf8 = detect("Zoë,李\n".encode(), final=True)
    assert utf8 is not None and (utf8.encoding.name, utf8.decided_by) == ("utf-8", "detected")
    bom = detect("\ufeffid\n".encode(), final=True)
    assert bom is not None and (bom.encoding.name, bom.decided_by) == ("utf-8", "bom")
    utf16 = detect("id\n".encode("utf-16"), final=True)
    assert utf16 is not None and (utf16.encoding.name, utf16.decided_by) == ("utf-16", "bom")


def test_broken_utf8_and_binary_are_no_encoding() -> None:
    assert detect("café ".encode() + b"\xe9 ok\n", final=True) is None
    assert detect(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", final=True) is None


def test_a_short_sample_plausible_in_several_encodings_is_refused() -> None:
    with pytest.raises(EncodingUndetermined) as caught:
        detect('id,city\n1,"Gdańsk, proszę"\n'.encode("cp1250"), final=True)
    assert {"windows-1250", "windows-1252"} <= set(caught.value.candidates)


def test_a_sample_cut_inside_a_character_is_detected_on_whole_lines() -> None:
    data = csv_text("ja", 2_000).encode("shift_jis")
    # a lead byte at the sample's end: its trail byte is not in the sample
    cut = next(i for i in range(60_000, 61_000) if data[i] >= 0x81 and data[i - 1] < 0x80)
    decision = detect(data[: cut + 1], final=False)
    assert decision is not None and decision.encoding.name == "shift_jis"


@pytest.mark.parametrize(
    ("label", "name", "codec"),
    [
        ("utf8", "utf-8", "utf-8-sig"),
        ("UTF-8", "utf-8", "utf-8-sig"),
        ("latin1", "iso-8859-1", "iso8859-1"),  # Python's meaning, not WHATWG's
        ("cp1252", "windows-1252", "cp1252"),
        ("windows-1251", "windows-1251", "cp1251"),
        ("koi8-r", "koi8-r", "koi8-r"),
        ("Shift_JIS", "shift_jis", "cp932"),  # the WHATWG superset
        ("sjis", "shift_jis", "cp932"),
        ("x-sjis", "shift_jis", "cp932"),  # a WHATWG-only label
        ("euc-kr", "euc_kr", "cp949"),
        ("gbk", "gb18030", "gb18030"),
        ("big5", "big5", "big5hkscs"),
        ("iso-8859-2", "iso-8859-2", "iso8859-2"),
        ("x-mac-cyrillic", "mac-cyrillic", "mac-cyrillic"),
        ("utf-16le", "utf-16le", "utf-16-le"),
    ],
)
def test_labels_by_python_or_whatwg_name(label: str, name: str, codec: str) -> None:
    found = lookup(label)
    assert found is not None and (found.name, found.codec) == (name, codec)


@pytest.mark.parametrize("label", ["base64", "rot13", "zlib", "idna", "unicode_escape", "klingon"])
def test_what_is_not_a_text_encoding_is_no_label(label: str) -> None:
    assert lookup(label) is None
