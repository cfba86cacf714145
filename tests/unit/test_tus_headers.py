"""The tus 1.0 headers the resumable uploads read and write (services/gateway/intake/tus.py)."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime

import pytest

from services.gateway.imports.uploads import upload_params
from services.gateway.intake import tus
from services.gateway.problems import Problem


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_metadata_is_pairs_of_a_key_and_a_base64_value() -> None:
    header = f"filename {_b64('big file.csv')},table {_b64('public.customers')},is_draft"
    assert tus.metadata(header) == {
        "filename": "big file.csv",
        "table": "public.customers",
        "is_draft": "",
    }
    assert tus.metadata(None) == {} == tus.metadata("  ")


@pytest.mark.parametrize(
    "header",
    ["table not-base64!", f"table {_b64('a')},table {_b64('b')}", f"table {_b64('x')},", "a b c"],
)
def test_unreadable_metadata_is_a_400_naming_the_header(header: str) -> None:
    with pytest.raises(Problem) as caught:
        tus.metadata(header)
    assert caught.value.status == 400
    assert caught.value.body_json["header"] == "Upload-Metadata"


@pytest.mark.parametrize("value", [None, "-1", "1.5", "ten", "١٢", "9" * 20])
def test_offsets_and_lengths_are_non_negative_integers(value: str | None) -> None:
    headers = {} if value is None else {"Upload-Offset": value}
    with pytest.raises(Problem) as caught:
        tus.non_negative(headers, "Upload-Offset")
    assert caught.value.status == 400
    assert tus.non_negative({"Upload-Offset": "0"}, "Upload-Offset") == 0
    assert tus.non_negative({"Upload-Length": "104857600"}, "Upload-Length") == 104_857_600


def test_a_request_without_tus_1_0_0_is_refused_with_the_version_supported() -> None:
    tus.require_version({"Tus-Resumable": "1.0.0"})
    with pytest.raises(Problem) as caught:
        tus.require_version({"Tus-Resumable": "0.2.2"})
    assert caught.value.status == 412
    assert caught.value.headers["Tus-Version"] == "1.0.0"


@pytest.mark.parametrize("algorithm", ["sha1", "sha256"])
def test_a_checksum_passes_only_for_the_bytes_it_was_made_of(algorithm: str) -> None:
    body = b"id,name\n1,A\n"
    digest = base64.b64encode(hashlib.new(algorithm, body).digest()).decode()
    good = tus.Checksum(f"{algorithm} {digest}")
    good.update(body[:5])
    good.update(body[5:])
    good.check()
    bad = tus.Checksum(f"{algorithm} {digest}")
    bad.update(body + b"2,B\n")
    with pytest.raises(Problem) as caught:
        bad.check()
    assert caught.value.status == tus.CHECKSUM_MISMATCH == 460
    assert caught.value.body_json["type"] == "/problems/checksum-mismatch"


@pytest.mark.parametrize("header", ["md5 AAAA", "sha256 not base64!", "sha256"])
def test_an_unknown_algorithm_or_unreadable_digest_is_a_400(header: str) -> None:
    with pytest.raises(Problem) as caught:
        tus.Checksum(header)
    assert caught.value.status == 400


def test_discovery_names_the_extensions_and_the_size_limit() -> None:
    found = tus.discovery(100 * 1024 * 1024)
    assert found["Tus-Version"] == "1.0.0"
    assert set(found["Tus-Extension"].split(",")) == {
        "creation",
        "checksum",
        "expiration",
        "termination",
    }
    assert found["Tus-Max-Size"] == "104857600"
    assert "sha256" in found["Tus-Checksum-Algorithm"].split(",")
    assert tus.expires(datetime(2026, 12, 3, 8, 0, tzinfo=UTC)) == "Thu, 03 Dec 2026 08:00:00 GMT"


def test_the_import_options_come_from_metadata_and_the_query_wins() -> None:
    metadata = {"table": "a", "chunk_size": "500", "filename": "x.csv", "filetype": "text/csv"}
    assert upload_params({"chunk_size": "100"}, metadata) == {"table": "a", "chunk_size": "100"}
