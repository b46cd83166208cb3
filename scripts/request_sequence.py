"""N removal requests of one person each, in sequence, against one request of the same N people
at once (issue 15), as two DVC experiments on a reproduced workspace.

    python scripts/request_sequence.py --people 5 --towers text

The N people are the first N of the sweep's removal order (`defend.seed`, `defend.pool`), so
the one-request run removes the same people as the sweep's K = N. Writes the request folders
under requests/ (seq-1 ... seq-N, all-N; left in place, untracked), runs
`dvc exp run -S requests.chain=[...]` twice and prints, per request of the sequence and for the
single request: people removed so far whom the attack still identifies, earlier requests' people identified again,
wrongfully unlearned, FPR, zero-shot change. Results also go to metrics/request_sequence.json.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from pipeline.core.params import load_params
from pipeline.defenses.targets import pool_members, removal_set


def write_request(folder: Path, rid: str, names: list[str], towers: list[str]) -> None:
    (folder / rid).mkdir(parents=True, exist_ok=True)
    (folder / rid / "request.yaml").write_text(yaml.safe_dump({"id": rid, "names": names, "towers": towers}))


def chain_arg(ids: list[str]) -> str:
    entries = [f"{{id: {rid}, after: {prev}, folder: requests}}" for prev, rid in zip(["base"] + ids, ids)]
    return "requests.chain=[" + ", ".join(entries) + "]"


def summarize(rid: str, tower: str) -> dict:
    m = json.loads(Path(f"metrics/requests/{rid}.json").read_text())[tower]
    return {"request": rid, "identified_of_removed_so_far": m["verdicts"]["not removed"],
            "earlier_back": m["earlier_back"], "wrongfully_unlearned": m["wrongfully_unlearned"],
            "wrongfully_unlearned_pct": round(m["wrongfully_unlearned_pct"], 2), "fpr": m["fpr"],
            "newly_identified_nonmembers": m["newly_identified_nonmembers"],
            "zeroshot_top1_change_pts": {b: round(100 * v["top1_change"], 2) for b, v in m["zeroshot"].items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, default=5)
    ap.add_argument("--towers", nargs="+", default=["text"], choices=["text", "image", "both"])
    args = ap.parse_args()
    d = load_params("defend")
    names = removal_set(pd.read_csv("data/idia_before/identities.csv"), args.people, d["seed"],
                        pool_members(pd.read_csv("data/splits/identities.csv"), d["pool"]), d["pool"])
    folder = Path("requests")
    seq = [f"seq-{i + 1}" for i in range(len(names))]
    for rid, name in zip(seq, names):
        write_request(folder, rid, [name], args.towers)
    together = f"all-{len(names)}"
    write_request(folder, together, names, args.towers)
    results = {}
    for label, ids in (("sequence", seq), ("together", [together])):
        # only the requests (and what they need): a stale stage elsewhere must not rerun the whole demo
        cmd = [sys.executable, "-m", "dvc", "exp", "run", "-n", f"requests-{label}", "-S", chain_arg(ids), "request"]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        results[label] = {t: [summarize(rid, t) for rid in ids] for t in args.towers}
    subprocess.run(["git", "checkout", "--", "params.yaml"], check=True)
    Path("metrics/request_sequence.json").write_text(json.dumps(
        {"people": len(names), "towers": args.towers, **results}, indent=2) + "\n")
    for tower in args.towers:
        print(f"\n{tower} model: identified of everyone removed so far / of them from earlier requests / wrongfully unlearned / FPR / zero-shot")
        for label in ("sequence", "together"):
            for row in results[label][tower]:
                print(f"  {label:9s} {row['request']:7s} {row['identified_of_removed_so_far']} / {row['earlier_back']} / "
                      f"{row['wrongfully_unlearned']} ({row['wrongfully_unlearned_pct']} %) / {row['fpr']} / "
                      f"{row['zeroshot_top1_change_pts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
