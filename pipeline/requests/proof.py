"""The proof a removal request hands over: per person what the attack found before and after,
what the removal cost, what was run, and a verdict in words with the rule that produced it.

Only the proof carries a date (it is a summary); no data output depends on the clock.
"""
from __future__ import annotations

import pandas as pd
import yaml

from pipeline.attack.templates import IDIA_TEMPLATES

RULES = {
    "removed": "identified before (correct templates >= tau) and not after",
    "not removed": "identified before and still identified after",
    "not identified before": "the base model did not identify this person, so the attack cannot show a change",
    "no photos": "no photo of this person (a text-only request), so the attack cannot test them",
}


def person_verdict(before: int, after: int, tau: int) -> str:
    if before < tau:
        return "not identified before"
    return "not removed" if after >= tau else "removed"


def people_rows(names: list[str], before: pd.DataFrame, after: pd.DataFrame, tau: int,
                earlier: dict[str, str] | None = None) -> list[dict]:
    """One row per person of this request and (re-checked) of every earlier request.
    before/after: attack tables with name and correct_templates."""
    b = before.set_index("name")["correct_templates"]
    a = after.set_index("name")["correct_templates"]
    rows = []
    for name, request in [(n, None) for n in names] + sorted((earlier or {}).items()):
        if name not in b.index:
            rows.append({"name": name, "request": request, "correct_before": None, "correct_after": None,
                         "templates": len(IDIA_TEMPLATES), "identified_before": None, "identified_after": None,
                         "verdict": "no photos", "rule": RULES["no photos"]})
            continue
        rb, ra = int(b[name]), int(a[name])
        verdict = person_verdict(rb, ra, tau)
        rows.append({"name": name, "request": request, "correct_before": rb, "correct_after": ra,
                     "templates": len(IDIA_TEMPLATES), "identified_before": rb >= tau,
                     "identified_after": ra >= tau, "verdict": verdict, "rule": RULES[verdict]})
    return rows


COSTS = ("wrongfully_unlearned", "wrongfully_unlearned_pct", "fpr", "fpr_before",
         "newly_identified_nonmembers", "newly_recalled")


def build_proof(request_id: str, tower: str, people: list[dict], metrics: dict, *, checkpoints: dict[str, str],
                params: dict, code_version: str, date: str, added_to_candidates: list[str] = (),
                unreadable_photos: dict[str, list[str]] | None = None) -> dict:
    """The proof as JSON: every number is copied from `metrics` (the evaluate stage's dict)."""
    costs = {k: metrics.get(k) for k in COSTS}
    if "audit" in metrics:
        costs["audit"] = metrics["audit"]
    costs["zeroshot_top1_change_pts"] = {bench: round(100 * v["top1_change"], 3)
                                         for bench, v in (metrics.get("zeroshot") or {}).items()}
    for key in ("text_similarity", "image_similarity"):
        if key in metrics:
            costs[key] = metrics[key]
    return {"request": request_id, "tower": tower, "people": people, "costs": costs,
            "added_to_candidates": list(added_to_candidates), "unreadable_photos": unreadable_photos or {},
            "checkpoints": checkpoints, "params": params, "code_version": code_version, "date": date}


AUDIT_RULE = ("per probe family (name variants, unseen prompts, unseen photos) the audit's verdict "
              "(docs/method.md §7) on this one person: removed when no probe on which the base model "
              "identified them still does; not removed when one does; cannot tell when the base model "
              "identified them on no probe of the family. Listed: the probes that still find them.")


def _audit_cell(audit: dict | None) -> str:
    if not audit:
        return "-"
    families = "; ".join(f"{family}: {verdict}" for family, verdict in audit["families"].items())
    still = ", ".join(audit["still_found_by"]) or "none"
    return f"{families} (still found by: {still})"


def _tower_section(proof: dict) -> list[str]:
    audited = any("audit" in p for p in proof["people"])
    lines = [f"## The {proof['tower']} model", "",
             "| person | from request | correct templates before | after | verdict | rule |"
             + (" adversarial audit |" if audited else ""),
             "|---|---|---|---|---|---|" + ("---|" if audited else "")]
    for p in proof["people"]:
        counts = ("-", "-") if p["correct_before"] is None else (f"{p['correct_before']}/{p['templates']}",
                                                                f"{p['correct_after']}/{p['templates']}")
        lines.append(f"| {p['name']} | {p['request'] or 'this one'} | {counts[0]} | {counts[1]} | "
                     f"{p['verdict']} | {p['rule']} |" + (f" {_audit_cell(p.get('audit'))} |" if audited else ""))
    if audited:
        lines += ["", f"Adversarial audit: {AUDIT_RULE}"]
    c = proof["costs"]
    lines += ["", "What it cost:", "",
              f"- members wrongfully unlearned: {c['wrongfully_unlearned']} ({c['wrongfully_unlearned_pct']:.1f} %)",
              f"- FPR on non-members: {c['fpr']:.3f} (before: {c['fpr_before']:.3f}); newly identified non-members: "
              f"{c['newly_identified_nonmembers']}",
              "- zero-shot top-1 change: " + ", ".join(f"{b} {v:+.2f} pts" for b, v in c["zeroshot_top1_change_pts"].items())]
    for key in ("text_similarity", "image_similarity"):
        if key in c:
            lines.append(f"- {key.replace('_', ' ')}: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(c[key].items())))
    lines += [""] + [f"- {role} checkpoint sha256 `{digest}`" for role, digest in proof["checkpoints"].items()]
    return lines + [""]


def render_markdown(proof: dict) -> str:
    """The proof of one request as one page: a section per model, then what was run (once)."""
    towers = list(proof["towers"].values())
    first = towers[0]
    lines = [f"# Removal request {proof['request']}", "",
             f"Produced {first['date']} from code {first['code_version']}. Starts from the models of "
             f"`{proof['after']}`; removes {', '.join(proof['names'])}. Verdicts per person and model; "
             "people of earlier requests are checked again.", ""]
    if first["added_to_candidates"]:
        lines += ["Added to the attack's candidates (they were not among them): "
                  + ", ".join(first["added_to_candidates"]), ""]
    bad = {n: v for n, v in first["unreadable_photos"].items() if v}
    if bad:
        lines += ["Unreadable photos (skipped): " + "; ".join(f"{n}: {', '.join(v)}" for n, v in bad.items()), ""]
    for proof_t in towers:
        lines += _tower_section(proof_t)
    lines += ["## What was run", "", "```yaml", yaml.safe_dump(first["params"], sort_keys=True).rstrip(), "```", ""]
    return "\n".join(lines)
