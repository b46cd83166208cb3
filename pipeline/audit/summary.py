"""From probe tables (pipeline/audit/run.py) to the audit's numbers and verdicts.

Per probe: TPR on the removed (base and defended), the residual (docs/method.md §7) and the
collateral on that probe (kept members the base model identifies on it and the defended
model does not). Per family: the verdict of probes.family_verdict.
"""
from __future__ import annotations

import pandas as pd

from pipeline.audit.probes import family_verdict, residual
from pipeline.audit.run import NOT_APPLICABLE

FAMILIES = {"name variants": "name_", "unseen prompts": "prompts_", "unseen photos": "photo_"}


def family_of(probe: str) -> str | None:
    return next((family for family, prefix in FAMILIES.items() if probe.startswith(prefix)), None)


def probe_summary(base: pd.DataFrame, model: pd.DataFrame, members: pd.Series, removed: list[str],
                  tau: int) -> dict:
    """base/model: probe tables (name + one column per probe); members: bool per name."""
    b, m = base.set_index("name"), model.set_index("name")
    if set(b.index) != set(m.index) or list(b.columns) != list(m.columns):
        raise ValueError("the base and defended probe tables cover different people or probes")
    is_member = members.reindex(b.index).fillna(False).astype(bool)
    is_removed = b.index.isin(removed)
    if is_removed.sum() != len(set(removed)):
        raise ValueError(f"removed people missing from the probe table: {sorted(set(removed) - set(b.index))}")
    probes = {}
    for probe in b.columns:
        valid = (b[probe] != NOT_APPLICABLE) & (m[probe] != NOT_APPLICABLE)
        base_hit, model_hit = b[probe] >= tau, m[probe] >= tau
        rem = valid & is_removed
        kept = valid & is_member & ~is_removed & base_hit
        res, rests_on = residual(list(base_hit[rem]), list(model_hit[rem]))
        probes[probe] = {
            "removed_probed": int(rem.sum()),
            "tpr_removed_base": float(base_hit[rem].mean()) if rem.any() else None,
            "tpr_removed": float(model_hit[rem].mean()) if rem.any() else None,
            "residual": res,
            "residual_rests_on": rests_on,
            "wrongfully_unlearned_pct": 100.0 * float((~model_hit[kept]).mean()) if kept.any() else 0.0,
        }
    verdicts = {}
    for family in FAMILIES:
        members_of = [p for p in probes if family_of(p) == family]
        if members_of:
            worst = [probes[p]["residual"] for p in members_of]
            verdicts[family] = {"verdict": family_verdict(worst),
                                "worst_probe": max((p for p in members_of if probes[p]["residual"] is not None),
                                                   key=lambda p: probes[p]["residual"], default=None)}
    return {"probes": probes, "families": verdicts}
