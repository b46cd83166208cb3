"""Named text-defense recipes beyond the paper's (issue 17), as overrides of `defend.text`.

Each recipe is complete over the options beyond the paper (PAPER switches every one off), so a
recipe means the same whatever params.yaml's default is (since issue 17 that default is
`paper-face-retain`). They are fixed here, before any measurement, so that
scripts/hardening_trial.py and scripts/relearning_trial.py train the same recipes and neither
tunes them on the people it reports.
"""
from __future__ import annotations

from pipeline.audit.variants import FAMILIES

# Which families the hardened recipe trains on; the rest are held out for the audit.
TRAINED_VARIANTS = ["last_first", "first_only", "last_only", "typo"]
HELD_OUT_VARIANTS = [f for f in FAMILIES if f not in TRAINED_VARIANTS]   # dropped_letter, initials_last, homoglyph
HARDENED = {"variant_families": TRAINED_VARIANTS, "variant_share": 0.5, "variants_per_name": 4,
            "context_families": ["photo", "event", "portrait", "news", "languages"], "context_share": 0.5,
            "shared_name_parts": "skip"}
# The paper's recipe: the exact name only, no face push, nothing held in place (docs/method.md §2).
PAPER = {"variant_families": [], "context_families": [], "shared_name_parts": "keep", "retain_sharers": 0,
         "face_push": 0.0, "face_margin": 0.0}
HARDENED = {**PAPER, **HARDENED}
# the demo default (params.yaml defend.text): chosen by issue 17's rule on the test pool
FACE_RETAIN = {**PAPER, "face_push": 1.0, "face_margin": 0.05, "retain_sharers": 512}
RECIPES = {
    "paper": PAPER,
    "hardened": HARDENED,
    # point 3's alternative: keep the shared name parts, hold the kept sharers in place instead
    "hardened-retain": {**HARDENED, "shared_name_parts": "keep", "retain_sharers": 512},
    # issue 17 point 4's change aimed at relearning: the hardened recipe without the weight
    # regulariser, so the edit may move further from the original weights
    "hardened-noreg": {**HARDENED, "weight_reg": 0.0},
    # aimed at the exact names that both recipes leave identified at K = 16: twice the steps
    # (same schedule shape), so each name sees twice the poisoned pairs; chosen on the dev pool
    "hardened-long": {**HARDENED, "steps": 800, "milestones": [400, 600]},
    # aimed at the exact names the paper's recipe leaves identified at K = 16 (a few stray votes of
    # the person's own photos still land on their name): written down before any run, tried on
    # the dev pool (removal seeds 3-8). paper-b2: twice the backdoor weight. paper-face: each
    # poisoned caption must point at the person's own face (trigger photos) no more than its
    # target does, less 0.05 (needs the trigger photos' embeddings).
    "paper-b2": {**PAPER, "beta": 1.2},
    "paper-face": {**PAPER, "face_push": 1.0, "face_margin": 0.05},
    # written after paper-face's first dev seeds showed more name sharers lost: the push plus the
    # kept sharers' names held in place (512 clean captions naming them)
    "paper-face-retain": FACE_RETAIN,
    # written after paper-face-retain's test-pool rows (last-only residual 0.15 / 0.11): the same on
    # top of the hardened recipe's variants and contexts
    "hardened-face-retain": {**HARDENED, "face_push": 1.0, "face_margin": 0.05, "retain_sharers": 512},
}
