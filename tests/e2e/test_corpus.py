# ruff: noqa: RUF001  (the corpus holds Chinese text, with its full-width commas)
"""The hostile-file corpus (tests/corpus/): each file is imported through the whole stack
and must produce exactly its expected problem, or its expected report and row errors."""

from __future__ import annotations

import datetime
import io
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.conftest import wait_final

CORPUS = Path(__file__).parent.parent / "corpus"
HEADER = "id,email,name,mood,joined,score,active,bio\n"

SCHEMA = """
DO $$ BEGIN
    CREATE TYPE public.corpus_mood AS ENUM ('happy', 'sad', 'ok');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE public.people_{s} (
    id     integer PRIMARY KEY,
    email  varchar(80) NOT NULL UNIQUE,
    name   text NOT NULL,
    mood   public.corpus_mood,
    joined date,
    score  numeric(5,2),
    active boolean,
    bio    text CHECK (bio IS NULL OR bio <> 'forbidden')
);
CREATE TABLE public.orders_{s} (
    id        integer PRIMARY KEY,
    person_id integer NOT NULL REFERENCES public.people_{s} (id),
    note      text
);
CREATE TABLE public.staff_{s} (
    id         integer PRIMARY KEY,
    manager_id integer REFERENCES public.staff_{s} (id),
    name       text NOT NULL
);
CREATE TABLE public.notes_{s} (
    id        integer PRIMARY KEY,
    person_id integer,
    note      text
);
"""

TWO_PEOPLE = (
    "INSERT INTO public.people_{s} (id, email, name, mood) VALUES"
    " (1, 'one@example.com', 'One', 'happy'), (9, 'taken@example.com', 'Taken', 'ok')"
)

Error = tuple[int, str | None, str, str]  # line, column, code, severity


@dataclass
class Case:
    file: str
    target: str = "people"
    params: dict[str, str] = field(default_factory=dict)
    rules: str | None = None  # rule file for the target ({s}: the case's table suffix)
    seed: str | None = None
    problem: dict[str, Any] | None = None  # expected problem members, else a report
    report: dict[str, Any] = field(default_factory=dict)  # expected report members
    errors: list[Error] = field(default_factory=list)
    stored: dict[int, dict[str, Any]] = field(default_factory=dict)  # id → expected columns
    encoding: tuple[str, str] | None = None  # (name, how it was decided) on the import


def ok(total: int, **more: Any) -> dict[str, Any]:
    """A report in which every row was loaded."""
    return {
        "status": "completed",
        "total_records": total,
        "failed_records": 0,
        "duplicate_count": 0,
        "missing_required_fields": [],
        "invalid_format_fields": [],
        **more,
    }


def bad(
    total: int,
    failed: int,
    *,
    missing: dict[str, int] | None = None,
    invalid: dict[str, int] | None = None,
    duplicates: int = 0,
    status: str = "completed_with_errors",
    **more: Any,
) -> dict[str, Any]:
    return {
        "status": status,
        "total_records": total,
        "failed_records": failed,
        "duplicate_count": duplicates,
        "missing_required_fields": [{"field": f, "count": n} for f, n in (missing or {}).items()],
        "invalid_format_fields": [{"field": f, "count": n} for f, n in (invalid or {}).items()],
        **more,
    }


def encoding_problem(file: str, bad_byte: bytes, line: int, column: int) -> dict[str, Any]:
    data = (CORPUS / file).read_bytes()
    return {
        "status": 422,
        "type": "/problems/invalid-encoding",
        "byte_offset": data.index(bad_byte),
        "line": line,
        "column": column,
    }


RULES_PEOPLE = """
format = "tidegate.rules/v1"
[columns.email]
aliases = ["E-mail"]
format = "email"
[columns.name]
aliases = ["Full name"]
pattern = "[A-Z].*"
[columns.joined]
aliases = ["Joined on"]
date_formats = ["%d/%m/%Y", "%m/%d/%Y"]
[columns.score]
min = 0
max = 100
"""

CASES: dict[str, Case] = {
    "utf8_bom": Case(
        "utf8_bom.csv",
        report=ok(2, loaded_records=2),
        stored={1: {"name": 'Zoë "Z" Ünal', "bio": "李 ☕ 😀\nsecond line"}},
    ),
    "utf16le_bom": Case(
        "utf16le_bom.csv",
        report=bad(2, 1, invalid={"joined": 1}, loaded_records=1),
        errors=[(3, "joined", "invalid_date", "error")],
    ),
    "utf16be_bom": Case("utf16be_bom.csv", report=ok(1), stored={1: {"name": "Åsa"}}),
    "windows1252": Case(
        "windows1252.csv",
        report=ok(1),
        encoding=("windows-1252", "detected"),
        stored={1: {"name": "François", "bio": "price 10 \u20ac \u2013 \u201cquoted\u201d"}},
    ),
    "iso8859_15": Case(
        "iso8859_15.csv",
        params={"encoding": "iso-8859-15"},
        report=ok(1),
        encoding=("iso-8859-15", "declared"),
        stored={1: {"name": "Œuvre", "bio": "5 €"}},
    ),
    "koi8r": Case(
        "koi8r.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {"name": "Иван Петров", "bio": "Москва. Привет, как дела? Заказ доставлен вовремя."},
            2: {
                "name": "Мария Смирнова",
                "bio": "Санкт-Петербург. Просьба перезвонить после обеда.",
            },
            3: {
                "name": "Ольга Попова",
                "bio": "Екатеринбург. Клиент доволен качеством обслуживания.",
            },
        },
        encoding=("koi8-r", "detected"),
    ),
    "windows1251": Case(
        "windows1251.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "Алексей Кузнецов",
                "bio": "Новосибирск. Счёт выставлен повторно, спасибо.",
            },
            2: {
                "name": "Наталья Иванова",
                "bio": "Казань. Доставка по адресу: улица Ленина, дом 5.",
            },
            3: {"name": "Дмитрий Соколов", "bio": "Самара. Оплата получена полностью."},
        },
        encoding=("windows-1251", "detected"),
    ),
    "shift_jis": Case(
        "shift_jis.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "山田太郎",
                "bio": "東京。お世話になっております。注文の件でご連絡しました。",
            },
            2: {"name": "佐藤花子", "bio": "大阪。商品は無事に届きました。ありがとうございます。"},
            3: {"name": "鈴木一郎", "bio": "名古屋。来週の打ち合わせの日程を調整させてください。"},
        },
        encoding=("shift_jis", "detected"),
    ),
    "euc_jp": Case(
        "euc_jp.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {"name": "高橋美咲", "bio": "福岡。請求書の再発行をお願いいたします。"},
            2: {"name": "田中健太", "bio": "札幌。配送先の住所を確認してください。"},
            3: {"name": "伊藤さくら", "bio": "京都。またのご利用をお待ちしております。"},
        },
        encoding=("euc_jp", "detected"),
    ),
    "gb18030": Case(
        "gb18030.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {"name": "王伟", "bio": "北京。您好，我们已经收到您的订单，将尽快发货。"},
            2: {"name": "李娜", "bio": "上海。请确认收货地址是否正确。"},
            3: {"name": "张敏", "bio": "广州。感谢您的耐心等待，祝您生活愉快。"},
        },
        encoding=("gb18030", "detected"),
    ),
    "big5": Case(
        "big5.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {"name": "陳志明", "bio": "台北。您好，我們已經收到您的訂單，將盡快出貨。"},
            2: {"name": "林美玲", "bio": "高雄。請確認收貨地址是否正確。"},
            3: {"name": "黃建國", "bio": "台中。感謝您的耐心等待，祝您生活愉快。"},
        },
        encoding=("big5", "detected"),
    ),
    "euc_kr": Case(
        "euc_kr.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {"name": "김민수", "bio": "서울. 안녕하세요, 주문하신 상품이 발송되었습니다."},
            2: {"name": "이지은", "bio": "부산. 배송 주소를 다시 확인해 주시기 바랍니다."},
            3: {"name": "박서준", "bio": "대구. 기다려 주셔서 감사합니다. 좋은 하루 되세요."},
        },
        encoding=("euc_kr", "detected"),
    ),
    "windows1250": Case(
        "windows1250.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "Łukasz Wójcik",
                "bio": "Łódź. Zamówienie zostało wysłane, dziękujemy za cierpliwość.",
            },
            2: {"name": "Zofia Kowalczyk", "bio": "Gdańsk. Proszę o potwierdzenie adresu dostawy."},
            3: {
                "name": "Małgorzata Ślęzak",
                "bio": "Wrocław. Faktura została wystawiona ponownie.",
            },
        },
        encoding=("windows-1250", "detected"),
    ),
    "iso8859_2": Case(
        "iso8859_2.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "Jiří Novák",
                "bio": "Praha. Objednávka byla odeslána, děkujeme za trpělivost.",
            },
            2: {"name": "Kateřina Dvořáková", "bio": "Brno. Prosím o potvrzení doručovací adresy."},
            3: {
                "name": "Tomáš Černý",
                "bio": "Ostrava. Zákazník žádá o zpětné zavolání odpoledne.",
            },
        },
        encoding=("iso-8859-2", "detected"),
    ),
    "iso8859_1": Case(
        "iso8859_1.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "François Lefèvre",
                "bio": "Besançon. Commande expédiée, merci de votre patience.",
            },
            2: {
                "name": "Hélène Müller",
                "bio": "Zürich. Prière de confirmer l'adresse de livraison.",
            },
            3: {
                "name": "José Martínez",
                "bio": "Málaga. Le client souhaite être rappelé après le déjeuner.",
            },
        },
        encoding=("windows-1252", "detected"),
    ),
    "iso8859_15_undeclared": Case(
        "iso8859_15_undeclared.csv",
        report=ok(3, loaded_records=3),
        stored={
            1: {
                "name": "Œuvre d'Éloïse",
                "bio": "Nancy. Le cœur du dossier : 5 € par mois, payé à l'avance.",
            },
            2: {"name": "Chloé Dubois", "bio": "Orléans. Facture réémise : 12 € au total."},
            3: {"name": "Zoé Lefèvre", "bio": "Reims. Sœur de la cliente précédente."},
        },
        encoding=("iso-8859-15", "detected"),
    ),
    "shift_jis_declared": Case(
        "shift_jis.csv",
        params={"encoding": "sjis"},
        report=ok(3, loaded_records=3),
        stored={1: {"name": "山田太郎"}},
        encoding=("shift_jis", "declared"),
    ),
    "ambiguous_latin": Case(
        "ambiguous_latin.csv",
        problem={
            "status": 422,
            "type": "/problems/undetermined-encoding",
            "candidates": ["windows-1252", "windows-1250", "windows-1257"],
        },
    ),
    "invalid_utf8": Case(
        "invalid_utf8.csv", problem=encoding_problem("invalid_utf8.csv", b"\xe9", 3, 20)
    ),
    "binary": Case("binary.csv", problem=encoding_problem("binary.csv", b"\x89", 1, 1)),
    "semicolon": Case(
        "semicolon.csv",
        report=bad(2, 1, invalid={"score": 1}),
        errors=[(3, "score", "decimal_comma", "error")],
    ),
    "tab": Case(
        "tab.tsv",
        report=bad(2, 1, invalid={"mood": 1}),
        errors=[(3, "mood", "not_allowed", "error")],
    ),
    "cr_endings": Case(
        "cr_endings.csv",
        report=bad(2, 1, invalid={"active": 1}),
        errors=[(4, "active", "invalid_boolean", "error")],
    ),
    "ragged": Case(
        "ragged.csv",
        report=bad(4, 2),
        errors=[(3, None, "wrong_field_count", "error"), (4, None, "wrong_field_count", "error")],
    ),
    "quotes_inside_quotes": Case("quotes_inside_quotes.csv", report=ok(2)),
    "stray_quote": Case(
        "stray_quote.csv", problem={"status": 422, "type": "/problems/malformed-csv", "line": 3}
    ),
    "unterminated_quote": Case(
        "unterminated_quote.csv",
        problem={"status": 422, "type": "/problems/malformed-csv", "line": 3},
    ),
    "embedded_newlines": Case(
        "embedded_newlines.csv",
        report=bad(4, 2, invalid={"joined": 1, "score": 1}),
        errors=[(5, "joined", "invalid_date", "error"), (8, "score", "invalid_number", "error")],
    ),
    "duplicates_across_chunks": Case(
        "duplicates_across_chunks.csv",
        params={"chunk_size": "3"},
        report=bad(8, 2, duplicates=2, loaded_records=6),
        errors=[
            (6, "id", "duplicate_in_file", "error"),
            (9, "email", "duplicate_in_file", "error"),
        ],
    ),
    "duplicates_skip": Case(
        "duplicates_skip.csv",
        params={"chunk_size": "3", "on_duplicate": "skip"},
        report=ok(8, duplicate_count=2, skipped_records=2, loaded_records=6),
        errors=[
            (6, "id", "duplicate_in_file", "warning"),
            (9, "email", "duplicate_in_file", "warning"),
        ],
    ),
    "duplicate_vs_table": Case(
        "duplicate_vs_table.csv",
        seed=TWO_PEOPLE,
        report=bad(3, 2, duplicates=2, loaded_records=1),
        errors=[
            (2, "id", "duplicate_in_table", "error"),
            (3, "email", "duplicate_in_table", "error"),
        ],
    ),
    "update": Case(
        "update.csv",
        seed=TWO_PEOPLE,
        params={"on_duplicate": "update"},
        report=ok(2, duplicate_count=1, updated_records=1, loaded_records=2),
        stored={1: {"name": "One (updated)", "mood": "sad"}, 5: {"name": "Five"}},
    ),
    "orders_missing_person": Case(
        "orders_missing_person.csv",
        target="orders",
        seed=TWO_PEOPLE,
        report=bad(4, 2, missing={"person_id": 1}),
        errors=[
            (3, "person_id", "missing_reference", "error"),
            (4, "person_id", "required", "error"),
        ],
    ),
    "staff_same_import": Case(
        "staff_same_import.csv", target="staff", params={"chunk_size": "2"}, report=ok(6)
    ),
    "staff_forward_reference": Case(
        "staff_forward_reference.csv",
        target="staff",
        params={"chunk_size": "2"},
        report=bad(5, 1, loaded_records=4),
        errors=[(3, "manager_id", "missing_reference", "error")],
    ),
    "formulas": Case(
        "formulas.csv",
        report=bad(6, 5, loaded_records=1),
        errors=[
            (2, "name", "formula", "error"),
            (4, "name", "formula", "error"),
            (5, "bio", "formula", "error"),
            (6, "bio", "formula", "error"),
            (7, "name", "formula", "error"),
        ],
    ),
    "formulas_neutralised": Case(
        "formulas.csv",
        rules='format = "tidegate.rules/v1"\n[content]\nformulas = "neutralise"\n',
        report=ok(6, loaded_records=6, warning_count=5),
        stored={1: {"name": '\'=HYPERLINK("http://x")'}, 2: {"bio": "-12.5"}},
        errors=[
            (2, "name", "formula", "warning"),
            (4, "name", "formula", "warning"),
            (5, "bio", "formula", "warning"),
            (6, "bio", "formula", "warning"),
            (7, "name", "formula", "warning"),
        ],
    ),
    "control_chars": Case(
        "control_chars.csv",
        report=bad(4, 3, loaded_records=1),
        errors=[
            (2, "name", "control_character", "error"),
            (3, "bio", "control_character", "error"),
            (4, "bio", "control_character", "error"),
        ],
    ),
    "markup": Case(
        "markup.csv",
        report=ok(3, loaded_records=3, warning_count=2),
        stored={1: {"bio": "<script>alert(1)</script>"}},
        errors=[(2, "bio", "markup", "warning"), (4, "bio", "markup", "warning")],
    ),
    "overlong": Case(
        "overlong.csv",
        rules='format = "tidegate.rules/v1"\n[content]\nmax_field_length = 50\n',
        report=bad(3, 2, invalid={"bio": 1, "name": 1}),
        errors=[(2, "bio", "too_long", "error"), (3, "name", "too_long", "error")],
    ),
    "wrong_header": Case(
        "wrong_header.csv",
        problem={
            "status": 422,
            "type": "/problems/header-mismatch",
            "missing": ["id", "name"],
            "unexpected": ["identifier", "full name"],
        },
    ),
    "empty": Case("empty.csv", problem={"status": 422, "type": "/problems/empty-file"}),
    "header_only": Case("header_only.csv", report=ok(0)),
    "ten_thousand_columns": Case(
        "generated:ten_thousand_columns",
        problem={
            "status": 422,
            "type": "/problems/header-mismatch",
            "missing": ["id", "email", "name"],
            "unexpected_count": 10_000,
        },
    ),
    "five_mb_field": Case(
        "generated:five_mb_field",
        report=bad(1, 1, invalid={"bio": 1}, status="failed"),
        errors=[(2, "bio", "too_long", "error")],
    ),
    "bad_types": Case(
        "bad_types.csv",
        report=bad(5, 4, missing={"name": 1}, invalid={"active": 1, "joined": 2, "score": 3}),
        errors=[
            (2, "joined", "invalid_date", "error"),
            (3, "active", "invalid_boolean", "error"),
            (3, "score", "decimal_comma", "error"),
            (4, "joined", "invalid_date", "error"),
            (4, "score", "out_of_range", "error"),
            (5, "name", "required", "error"),
            (5, "score", "too_many_decimals", "error"),
        ],
    ),
    "enum": Case(
        "enum.csv",
        report=bad(3, 2, invalid={"mood": 2}),
        errors=[(3, "mood", "not_allowed", "error"), (4, "mood", "not_allowed", "error")],
    ),
    "rule_file": Case(
        "rule_file.csv",
        rules=RULES_PEOPLE,
        report=bad(6, 5, invalid={"email": 1, "joined": 2, "name": 1, "score": 1}),
        stored={1: {"joined": datetime.date(2024, 1, 31)}},
        errors=[
            (3, "email", "invalid_email", "error"),
            (4, "joined", "ambiguous_date", "error"),
            (5, "name", "pattern_mismatch", "error"),
            (6, "score", "out_of_range", "error"),
            (7, "joined", "invalid_date", "error"),
        ],
    ),
    "required_association": Case(
        "required_association.csv",
        target="notes",
        seed=TWO_PEOPLE,
        rules=(
            'format = "tidegate.rules/v1"\n[[associations]]\ncolumns = ["person_id"]\n'
            'references = "public.people_{s}"\nto = ["id"]\n'
        ),
        report=bad(3, 2, missing={"person_id": 1}),
        errors=[
            (3, "person_id", "required", "error"),
            (4, "person_id", "missing_reference", "error"),
        ],
    ),
    "validate_only": Case(
        "validate_only.csv",
        params={"validate_only": "true"},
        report=bad(2, 1, invalid={"active": 1}, mode="validate_only", loaded_records=0),
        errors=[(3, "active", "invalid_boolean", "error")],
    ),
    "dry_run": Case(
        "dry_run.csv",
        params={"dry_run": "true"},
        report=bad(2, 1, mode="dry_run", loaded_records=1),
        errors=[(2, None, "check_violation", "error")],
    ),
}


def body_of(case: Case) -> bytes:
    if case.file == "generated:ten_thousand_columns":
        return (",".join(f"c{i}" for i in range(10_000)) + "\n" + "1," * 9_999 + "1\n").encode()
    if case.file == "generated:five_mb_field":
        return (HEADER + "1,a@example.com,Ana,happy,,,true," + "x" * 5_000_000 + "\n").encode()
    return (CORPUS / case.file).read_bytes()


def test_the_corpus_has_at_least_thirty_hostile_files() -> None:
    files = {c.file for c in CASES.values()}
    assert len(files) >= 30
    on_disk = {p.name for p in CORPUS.iterdir()}
    assert {f for f in files if not f.startswith("generated:")} == on_disk


@pytest.fixture
async def suffix(db: asyncpg.Connection) -> str:
    s = uuid.uuid4().hex[:8]
    await db.execute(SCHEMA.format(s=s))
    return s


async def rows_of(db: asyncpg.Connection, table: str) -> list[asyncpg.Record]:
    return await db.fetch(f"SELECT * FROM {table} ORDER BY id")


@pytest.mark.parametrize("name", sorted(CASES))
async def test_corpus_file(
    name: str, http: aiohttp.ClientSession, db: asyncpg.Connection, suffix: str, rules_dir: Path
) -> None:
    case = CASES[name]
    table = f"public.{case.target}_{suffix}"
    if case.seed:
        await db.execute(case.seed.format(s=suffix))
    if case.rules:
        (rules_dir / f"{table}.toml").write_text(case.rules.replace("{s}", suffix))
    before = await rows_of(db, table)
    async with http.post(
        "/api/v1/database/import",
        params={"table": table, **case.params},
        data=io.BytesIO(body_of(case)),
        headers={"Content-Type": "text/csv"},
    ) as response:
        answer = await response.json(content_type=None)
        status = response.status
    if case.problem is not None:
        got = {k: answer.get(k) for k in case.problem if k != "status"}
        assert {"status": status, **got} == case.problem
        assert await rows_of(db, table) == before
        return
    assert status == 202, answer
    if case.encoding is not None:
        assert (answer["encoding"], answer["encoding_decided_by"]) == case.encoding
    await wait_final(db, answer["id"])
    async with http.get(f"/api/v1/database/imports/{answer['id']}/report") as response:
        report = await response.json()
    assert {k: report[k] for k in case.report} == case.report
    async with http.get(
        f"/api/v1/database/imports/{answer['id']}/errors", params={"limit": "1000"}
    ) as response:
        listed = await response.json()
    got_errors = [(e["line"], e["column"], e["code"], e["severity"]) for e in listed["items"]]
    assert got_errors == case.errors
    loaded = await rows_of(db, table)
    by_id = {r["id"]: r for r in loaded}
    for ident, expected in case.stored.items():
        assert {k: by_id[ident][k] for k in expected} == expected
    if report["mode"] != "import":
        assert loaded == before
    else:
        assert len(loaded) - len(before) == report["loaded_records"] - report["updated_records"]


async def test_the_detection_endpoint_decides_as_the_import_does(
    http: aiohttp.ClientSession,
) -> None:
    """`POST /encodings/detect` (the console's preview) names the encoding each corpus file is
    imported with, and refuses the file the import refuses, with the same candidates."""
    for name, case in CASES.items():
        if case.encoding is None or case.encoding[1] != "detected":
            continue
        async with http.post(
            "/api/v1/database/encodings/detect",
            params={"complete": "true"},
            data=body_of(case),
            headers={"Content-Type": "text/csv"},
        ) as response:
            assert response.status == 200, name
            answer = await response.json()
        assert (answer["encoding"], answer["decided_by"]) == case.encoding, name
    refused = CASES["ambiguous_latin"]
    async with http.post(
        "/api/v1/database/encodings/detect",
        params={"complete": "true"},
        data=body_of(refused),
        headers={"Content-Type": "text/csv"},
    ) as response:
        problem = await response.json(content_type=None)
        assert response.status == 422
    assert refused.problem is not None
    assert problem["candidates"] == refused.problem["candidates"]
    async with http.post(
        "/api/v1/database/encodings/detect",
        data=b"x" * (64 * 1024 + 1),
        headers={"Content-Type": "text/csv"},
    ) as response:
        assert response.status == 413
