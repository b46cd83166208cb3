"""What a defense did to the attack, identity by identity (docs/method.md §1, metrics).

Over the K removed identities: how many the attack still identifies. Over the other
members: who was wrongly unlearned (identified before, not after) and who is newly
recalled (not before, identified after). Over non-members: the false-positive rate and
those newly identified (not before, identified after). The members who share a first or last
name with a removed person are counted apart as well: a defense that unlearns partial names
would erase them first.
"""
from __future__ import annotations

import pandas as pd

from pipeline.audit.variants import name_sharers


def _bool(series: pd.Series) -> pd.Series:
    return series.astype(str).str.lower().isin(["true", "1"])


def compare(before: pd.DataFrame, after: pd.DataFrame, removed: list[str]) -> tuple[pd.DataFrame, dict]:
    """Join the attack's per-identity tables before and after a defense and summarise."""
    b = before.set_index("name")
    a = after.set_index("name")
    table = pd.DataFrame({
        "member": _bool(b["member"]),
        "count": b["count"],
        "removed": b.index.isin(removed),
        "correct_before": b["correct_templates"],
        "correct_after": a.loc[b.index, "correct_templates"],
        "identified_before": _bool(b["identified"]),
        "identified_after": _bool(a.loc[b.index, "identified"]),
    }).reset_index()
    missing = set(removed) - set(table["name"])
    if missing:
        raise ValueError(f"removed identities not in the attack's table: {sorted(missing)}")
    rem = table[table["removed"]]
    others = table[table["member"] & ~table["removed"]]
    nonmembers = table[~table["member"]]
    lost = others["identified_before"] & ~others["identified_after"]
    gained = ~others["identified_before"] & others["identified_after"]
    known_before = int(others["identified_before"].sum())
    sharing = others[others["name"].isin(name_sharers(removed, list(others["name"])))]
    sharers_known = int(sharing["identified_before"].sum())
    sharers_lost = int((sharing["identified_before"] & ~sharing["identified_after"]).sum())
    unknown_before = len(others) - known_before
    k = len(rem)
    tpr_removed = float(rem["identified_after"].mean()) if k else None
    metrics = {
        "k": k,
        "tpr_removed": tpr_removed,
        "fnr_removed": None if tpr_removed is None else 1.0 - tpr_removed,
        "correct_templates_removed_before": float(rem["correct_before"].mean()) if k else None,
        "correct_templates_removed_after": float(rem["correct_after"].mean()) if k else None,
        "others": len(others),
        "others_identified_before": known_before,
        "wrongfully_unlearned": int(lost.sum()),
        # Percent of the other members the attack identified before (those that could be lost).
        "wrongfully_unlearned_pct": 100.0 * int(lost.sum()) / known_before if known_before else 0.0,
        "name_sharers_identified_before": sharers_known,
        "wrongfully_unlearned_name_sharers": sharers_lost,
        "wrongfully_unlearned_name_sharers_pct": 100.0 * sharers_lost / sharers_known if sharers_known else 0.0,
        "newly_recalled": int(gained.sum()),
        # Percent of the other members the attack missed before (those that could be gained).
        "newly_recalled_pct": 100.0 * int(gained.sum()) / unknown_before if unknown_before else 0.0,
        "tpr_others_after": float(others["identified_after"].mean()) if len(others) else None,
        "fpr_before": float(nonmembers["identified_before"].mean()) if len(nonmembers) else None,
        "fpr": float(nonmembers["identified_after"].mean()) if len(nonmembers) else None,
        # docs/method.md §5: a cost of its own, apart from the FPR (which also counts those named before)
        "newly_identified_nonmembers": int((~nonmembers["identified_before"] & nonmembers["identified_after"]).sum()),
    }
    return table, metrics
