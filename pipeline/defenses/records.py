"""What a defense run leaves behind: the defended checkpoint with the removed names and the
recipe, the loss curve, and the run's metrics (shared by the text and image stages)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from pipeline.core.atomic import atomic_dir, atomic_file, write_json
from pipeline.core.defense_params import config_to_dict
from pipeline.core.paths import run_name
from pipeline.models.checkpoint import save_checkpoint


def write_defense(run, defended, loaded, names: list[str], cfg, *, encoder: str, k: int, seed: int,
                  out_dir: Path, plot: Path, metrics: Path) -> None:
    with atomic_dir(out_dir) as tmp:
        save_checkpoint(defended, tmp, loaded.arch, loaded.model_cfg)
        pd.DataFrame({"name": names}).to_csv(tmp / "removed.csv", index=False)
        # YAML, not JSON: the folder's one *.json is the open_clip config stock loaders look for.
        (tmp / "defense.yaml").write_text(yaml.safe_dump(
            {"k": k, "seed": seed, encoder: config_to_dict(cfg)}, sort_keys=True))
    with atomic_file(plot) as fh:
        pd.DataFrame(run.log).to_csv(fh, index=False)
    last = run.log[-1]
    write_json(metrics, {
        "encoder": encoder, "k": k, "steps": len(run.log),
        "train_seconds": round(run.train_seconds, 2),
        "seconds_per_step": round(run.seconds_per_step, 4),
        "setup_seconds": round(run.setup_seconds, 2),
        "final_loss": last["loss"], "final_clean": last["clean"], "final_backdoor": last["backdoor"],
        "config": config_to_dict(cfg), "removal_seed": seed,
    })
    print(f"defend {run_name(encoder, k)}: removed {len(names)} identities in {run.train_seconds:.0f} s "
          f"({run.seconds_per_step:.2f} s/step)")


def removal_inputs(p: dict, k: int, *, identities: Path, pools: Path, base: Path, clean_captions: Path):
    """What both defenses start from: the device (threads and attention kernel set), the K
    names to remove (first K of `defend.seed`'s shuffle of the attack's identified members
    in the `defend.pool` pool of the splits), the base model, and the clean pool's training rows."""
    import torch

    from pipeline.defenses.targets import pool_members, removal_set
    from pipeline.models.checkpoint import load_model
    from pipeline.models.device import resolve_device, select_attention_kernel

    device = resolve_device(p["device"], "defend.device")
    select_attention_kernel(device)
    torch.set_num_threads(p["threads"])
    names = removal_set(pd.read_csv(identities), k, p["seed"],
                        pool_members(pd.read_csv(pools), p["pool"]), p["pool"])
    loaded = load_model(base, device)
    clean = pd.read_parquet(clean_captions)
    return device, names, loaded, clean[clean["split"] == "train"]
