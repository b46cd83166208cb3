"""The adversarial audit's probes (docs/method.md §7) on a request's models, read per person:
which probe families still find someone the request removed, by the audit's own verdict rules.

A person's residual on a probe is 1 when the base model identified them on it and the model
still does, 0 when the base model did and the model does not, and nothing when the base model
did not (the probe cannot show a change). `probes.family_verdict` then reads one person exactly
as it reads a removal set: the worst probe of the family decides.
"""
from __future__ import annotations

import pandas as pd

from pipeline.audit.probes import family_verdict
from pipeline.audit.run import NOT_APPLICABLE, probe_table, tower_embeddings
from pipeline.audit.summary import FAMILIES, family_of

# which saved embeddings a request model shares with which other model (by construction:
# a text request trains only the text tower, an image request only the image tower)
REUSE = {"text": {"photos": "base"}, "image": {"texts": "base"}, "both": {"texts": "text", "photos": "image"}}


def person_audit(base_row: pd.Series, model_row: pd.Series, tau: int) -> dict:
    """{"families": {family: verdict}, "still_found_by": [probe, ...]} for one person."""
    residuals: dict[str, list[float]] = {family: [] for family in FAMILIES}
    still = []
    for probe in base_row.index:
        family = family_of(probe)
        b, m = int(base_row[probe]), int(model_row[probe])
        if family is None or NOT_APPLICABLE in (b, m) or b < tau:
            continue
        residuals[family].append(1.0 if m >= tau else 0.0)
        if m >= tau:
            still.append(probe)
    return {"families": {f: family_verdict(r or [None]) for f, r in residuals.items()}, "still_found_by": still}


def audit_people(base: pd.DataFrame, model: pd.DataFrame, names: list[str], tau: int) -> dict[str, dict]:
    """Per name (present in both probe tables): its person_audit."""
    b, m = base.set_index("name"), model.set_index("name")
    return {n: person_audit(b.loc[n], m.loc[n], tau) for n in names if n in b.index and n in m.index}


def audit_counts(people: dict[str, dict], names: list[str]) -> dict:
    """The metrics' summary of `people` over `names`: per family, how many people got each
    verdict, and how many some probe still finds."""
    rows = [people[n] for n in names if n in people]
    families = {f: {} for f in FAMILIES}
    for row in rows:
        for family, verdict in row["families"].items():
            families[family][verdict] = families[family].get(verdict, 0) + 1
    return {"people": len(rows), "still_found": sum(1 for r in rows if r["still_found_by"]), "families": families}


def probe_request_models(base, models: dict, *, identities: pd.DataFrame, photos: pd.DataFrame,
                         candidates: pd.DataFrame, unseen: pd.DataFrame | None, batch_size: int, device,
                         seed: int, bf16: bool) -> dict[str, pd.DataFrame]:
    """Probe tables of the base model ("base") and of each request model, encoding each tower
    once: a tower a request model shares with the base model or another request model is reused."""
    kept: dict[str, dict] = {"base": {}}
    common = dict(identities=identities, photos=photos, candidates=candidates, unseen=unseen,
                  batch_size=batch_size, device=device, seed=seed, bf16=bf16)
    tables = {"base": probe_table(base, keep=kept["base"], **common)}
    for tower in ("text", "image", "both"):
        if tower not in models:
            continue
        reuse = {}
        for side, source in REUSE[tower].items():
            if source in kept:
                reuse.update(tower_embeddings(kept[source], side))
        kept[tower] = {}
        tables[tower] = probe_table(models[tower], reuse=reuse, keep=kept[tower], **common)
    return tables
