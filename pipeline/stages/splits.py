"""Stage `splits`: IDIA/trigger photo split, evaluated identities, candidate names, clean captions."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.data.corpus import read_shard_captions
from pipeline.data.filler_names import read_filler_names
from pipeline.data.occurrences import read_occurrences
from pipeline.data.splits import (assign_pools, candidate_names, clean_caption_pool, split_identities,
                                  text_caption_pool)
from pipeline.core.errors import PipelineError
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import FACESCRUB_INDEX, SHARDS, SPLITS, TEXT_CAPTIONS, UNSEEN_PHOTOS, metrics_file


def main() -> None:
    p = load_params("splits")
    seed = p["seed"]
    occurrences_path = Path(p["occurrences"])
    fraction = p["idia_fraction"]
    min_photos = p["min_idia_photos"]
    max_count = p["max_count"]
    total_names = p["candidate_names"]
    heldout = p["heldout_captions"]

    occurrences = read_occurrences(occurrences_path, "splits.occurrences")
    # both worlds write their filler names (demo: the renderer's lists; paper: SSA and Census)
    first_male, first_female, last_names = read_filler_names(p["filler_names"], "splits.filler_names")
    if not FACESCRUB_INDEX.is_file():
        raise PipelineError(f"{FACESCRUB_INDEX} not found; run the download_facescrub stage first")
    index = pd.read_parquet(FACESCRUB_INDEX)

    result = split_identities(index, occurrences, seed=seed, idia_fraction=fraction,
                              min_idia_photos=min_photos, max_count=max_count,
                              unseen_photos=p["unseen_photos"])
    ids = result.identities
    ids["pool"] = assign_pools(ids, p["dev_share"], seed)
    if not ids["member"].any():
        raise PipelineError(f"no member identity has >= {min_photos} IDIA photos "
                            f"(splits.min_idia_photos) and a count in (0, {max_count}]; "
                            f"dropped: {result.dropped}")
    candidates = candidate_names(
        list(ids["name"]), total_names, seed=seed,
        first_male=first_male, first_female=first_female, last_names=last_names,
        forbidden=list(index["name"].unique()) + list(occurrences["name"]))
    keys, captions = read_shard_captions(SHARDS)
    # Captions naming ANY downloaded identity are unsafe as "clean" text, not only evaluated ones.
    pool = clean_caption_pool(keys, captions, list(index["name"].unique()),
                              heldout=heldout, seed=seed)
    # The text defense trains on the corpus' clean captions, or on a caption file (the authors
    # used 10,000 MS-COCO captions); the held-out similarity captions stay the corpus' either way.
    if p["text_captions"] == "corpus":
        text = pool.loc[pool["split"] == "train", ["caption"]].reset_index(drop=True)
    else:
        text = text_caption_pool(p["text_captions"], list(index["name"].unique()) + list(occurrences["name"]))

    with atomic_dir(SPLITS) as tmp:
        ids.to_csv(tmp / "identities.csv", index=False)
        result.idia_photos.to_csv(tmp / "idia_photos.csv", index=False)
        result.trigger_faces.to_csv(tmp / "trigger_faces.csv", index=False)
        result.unseen_photos.to_csv(tmp / UNSEEN_PHOTOS, index=False)
        candidates.to_csv(tmp / "candidates.csv", index=False)
        pool.to_parquet(tmp / "clean_captions.parquet", index=False)
        text.to_parquet(tmp / TEXT_CAPTIONS, index=False)
    write_json(metrics_file("splits"), {
        "members": int(ids["member"].sum()),
        "nonmembers": int((~ids["member"]).sum()),
        "members_dev": int((ids["member"] & (ids["pool"] == "dev")).sum()),
        "members_test": int((ids["member"] & (ids["pool"] == "test")).sum()),
        "dropped": result.dropped,
        "idia_photos": len(result.idia_photos),
        "trigger_faces": len(result.trigger_faces),
        "unseen_photos": len(result.unseen_photos),
        "candidates": len(candidates),
        "clean_captions_train": int((pool["split"] == "train").sum()),
        "clean_captions_heldout": int((pool["split"] == "heldout").sum()),
        "text_defense_captions": len(text),
    })
    print(f"splits: {int(ids['member'].sum())} members, {int((~ids['member']).sum())} non-members, "
          f"{len(candidates)} candidate names, {len(pool)} clean captions")


if __name__ == "__main__":
    run_stage(main)
