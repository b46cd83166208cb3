"""The occurrence CSV: how often each person's name appears in the pretraining captions.

Columns `name,count` are required, `membership` is optional and others (the IDIA paper's
file has an unnamed index column and `bin`) are ignored. One reader for every stage, so a
bad file fails the same way everywhere: one PipelineError naming the file, the 1-based line
and the rule. Rows that are empty lines are skipped; everything else must be a valid row.
"""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pandas as pd

from pipeline.data.splits import normalise_name
from pipeline.core.errors import PipelineError

REQUIRED = ("name", "count")
OPTIONAL = ("membership",)
EXPECTED = "name,count[,membership]"
COUNT_RULE = "allowed: a whole number >= 0"
_INTEGER = re.compile(r"[+-]?\d+")
# Spreadsheets write counts as 12.0 or 1e3; int()/float() alone would also take "1_000" and "nan".
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def read_occurrences(path: Path | str, key: str) -> pd.DataFrame:
    """The validated table: name (stripped), count (int), and membership when the file has it.

    `key` is the params.yaml key the path came from; every message starts with it.
    """
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{key}: file not found: {path} (a CSV with columns {EXPECTED})")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise PipelineError(f"{key}: {path} line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                            "save the file as UTF-8") from None
    if "\0" in text:
        line = text.count("\n", 0, text.index("\0")) + 1
        raise PipelineError(f"{key}: {path} line {line}: NUL byte (UTF-16 or binary?); "
                            "save the file as UTF-8 text")
    if not text.strip():
        raise PipelineError(f"{key}: {path} is empty; expected a header line {EXPECTED} "
                            "and one line per person")

    where = f"{key}: {path} line"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    header_line = 0
    columns: dict[str, int] = {}
    names, counts, memberships = [], [], []
    first_line: dict[str, tuple[int, str]] = {}
    end = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise PipelineError(f"{where} {end + 1}: malformed CSV ({exc}; is a quote left open?)") from None
        line, end = end + 1, reader.line_num  # a quoted field may span lines: report where the row starts
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if header is None:
            header, header_line = [c.strip() for c in row], line
            for i, column in enumerate(header):
                if column and column in columns:
                    raise PipelineError(f"{where} {line}: the header names column {column!r} twice")
                columns[column] = i
            missing = [c for c in REQUIRED if c not in columns]
            if missing:
                raise PipelineError(f"{where} {line}: the header lacks column(s) {', '.join(missing)}; "
                                    f"expected {EXPECTED} (has {header})")
            continue
        if len(row) != len(header):
            raise PipelineError(f"{where} {line}: {len(row)} fields but the header has {len(header)}; "
                                "every line needs one value per column (quote a value that holds a comma)")
        name = row[columns["name"]].strip()
        if not name:
            raise PipelineError(f"{where} {line}: empty name; every line needs a person's name")
        norm = normalise_name(name)
        if norm in first_line:
            other_line, other = first_line[norm]
            raise PipelineError(f"{where} {line}: duplicate name {name!r}, already on line {other_line} "
                                f"as {other!r} (names are compared ignoring case, spaces and underscores); "
                                "each person must appear once")
        first_line[norm] = (line, name)
        names.append(name)
        counts.append(_count(row[columns["count"]].strip(), name, f"{where} {line}"))
        if "membership" in columns:
            memberships.append(row[columns["membership"]].strip())
    if not names:
        raise PipelineError(f"{key}: {path} has a header (line {header_line}) but no data rows; "
                            "expected one line per person")
    table = pd.DataFrame({"name": names, "count": pd.array(counts, dtype="int64")})
    if "membership" in columns:
        table["membership"] = memberships
    return table


def _count(text: str, name: str, where: str) -> int:
    if not text:
        raise PipelineError(f"{where}: empty count for {name!r}; {COUNT_RULE}")
    if _INTEGER.fullmatch(text):
        value = int(text)
    elif _DECIMAL.fullmatch(text):
        number = float(text)
        if number < 0:
            raise PipelineError(f"{where}: count {text!r} of {name!r} is negative; {COUNT_RULE}")
        if not number.is_integer():
            raise PipelineError(f"{where}: count {text!r} of {name!r} is not a whole number; {COUNT_RULE}")
        value = int(number)
    else:
        raise PipelineError(f"{where}: count {text!r} of {name!r} is not a number; {COUNT_RULE}")
    if value < 0:
        raise PipelineError(f"{where}: count {text!r} of {name!r} is negative; {COUNT_RULE}")
    return value
