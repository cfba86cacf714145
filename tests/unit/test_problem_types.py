"""Every problem type the gateway can answer with is documented in docs/problems.md."""

from __future__ import annotations

import ast
from pathlib import Path

from services.gateway.intake.csv_stream import CsvInputError
from services.gateway.problems import GENERIC

ROOT = Path(__file__).parent.parent.parent
DOCS = (ROOT / "docs" / "problems.md").read_text()


def _codes_in_source() -> set[str]:
    codes = set()
    for path in (ROOT / "services" / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            position = {"Problem": 1, "unauthorized": 0}.get(node.func.id)
            if position is not None and len(node.args) > position:
                arg = node.args[position]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    codes.add(arg.value)
    return codes


def test_every_problem_type_is_documented() -> None:
    codes = _codes_in_source()
    assert {"forbidden", "rate-limited", "missing-credentials", "invalid-credentials"} <= codes
    csv_codes = {"empty-file", "malformed-csv", "invalid-encoding"}
    generic = {code for code, _ in GENERIC.values()}
    for code in codes | csv_codes | generic:
        assert f"`/problems/{code}`" in DOCS, code
    assert CsvInputError("x", code="malformed_csv").code.replace("_", "-") in csv_codes
