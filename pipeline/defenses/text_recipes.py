"""Named text-defense recipes beyond the paper's (issue 17), as overrides of `defend.text`.

The paper's recipe is params.yaml's `defend.text` itself; these are fixed here, before any
measurement, so that scripts/hardening_trial.py and scripts/relearning_trial.py train the same
recipes and neither tunes them on the people it reports.
"""
from __future__ import annotations

from pipeline.audit.variants import FAMILIES

# Which families the hardened recipe trains on; the rest are held out for the audit.
TRAINED_VARIANTS = ["last_first", "first_only", "last_only", "typo"]
HELD_OUT_VARIANTS = [f for f in FAMILIES if f not in TRAINED_VARIANTS]   # dropped_letter, initials_last, homoglyph
HARDENED = {"variant_families": TRAINED_VARIANTS, "variant_share": 0.5, "variants_per_name": 4,
            "context_families": ["photo", "event", "portrait", "news", "languages"], "context_share": 0.5,
            "shared_name_parts": "skip"}
RECIPES = {
    "paper": {},
    "hardened": HARDENED,
    # point 3's alternative: keep the shared name parts, hold the kept sharers in place instead
    "hardened-retain": {**HARDENED, "shared_name_parts": "keep", "retain_sharers": 512},
    # issue 17 point 4's change aimed at relearning: the hardened recipe without the weight
    # regulariser, so the edit may move further from the original weights
    "hardened-noreg": {**HARDENED, "weight_reg": 0.0},
    # aimed at the exact names that both recipes leave identified at K = 16: twice the steps
    # (same schedule shape), so each name sees twice the poisoned pairs; chosen on the dev pool
    "hardened-long": {**HARDENED, "steps": 800, "milestones": [400, 600]},
}
