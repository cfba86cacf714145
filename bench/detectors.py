"""Which detector reads legacy CSV files right: tidegate's (chardetng, weighed against the
confusable readings) and charset-normalizer, on the files of tests/unit/test_text_encoding.py
(names, cities and prose in twelve legacy encodings, 1 to 500 rows each).

    .venv/bin/python -m bench.detectors

A reading is right when the file decodes to exactly its text; "refused" is tidegate asking
for `?encoding=` (never a wrong text)."""

from __future__ import annotations

from charset_normalizer import from_bytes

from shared.text_encoding import EncodingUndetermined, detect
from tests.unit.test_text_encoding import FILES, csv_text

SAMPLE = 64 * 1024


def _normalizer(data: bytes) -> str | None:
    best = from_bytes(data[:SAMPLE]).best()
    return None if best is None else best.encoding


def _tidegate(data: bytes) -> str | None:
    decided = detect(data[:SAMPLE], final=len(data) <= SAMPLE)
    return None if decided is None else decided.encoding.codec


def main() -> None:
    counts = {"tidegate": [0, 0, 0], "charset-normalizer": [0, 0, 0]}  # right, wrong, refused
    print(f"{'file':<28} {'tidegate':<16} charset-normalizer")
    for rows in (1, 3, 20, 500):
        for codec, lang, _ in FILES:
            text = csv_text(lang, rows)
            data = text.encode(codec)
            shown = []
            for name, guess in (("tidegate", _tidegate), ("charset-normalizer", _normalizer)):
                try:
                    found = guess(data)
                except EncodingUndetermined:
                    counts[name][2] += 1
                    shown.append("refused")
                    continue
                same = found is not None and data.decode(found, "replace") == text
                counts[name][0 if same else 1] += 1
                shown.append(f"{found} {'ok' if same else 'WRONG'}")
            print(f"{codec + f' x {rows}':<28} {shown[0]:<16} {shown[1]}")
    for name, (right, wrong, refused) in counts.items():
        print(f"{name}: {right} right, {wrong} wrong, {refused} refused")


if __name__ == "__main__":
    main()
