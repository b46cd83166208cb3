"""Stage `idia_before`: the Identity Inference Attack on the base model."""
from __future__ import annotations


import pandas as pd

from pipeline.core.atomic import atomic_dir, write_json
from pipeline.attack.run import run_idia, save_embeddings
from pipeline.core.errors import PipelineError
from pipeline.models.checkpoint import load_model
from pipeline.models.device import resolve_device
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import BASE_MODEL, IDIA_BEFORE, SPLITS, metrics_file


def read_split_table(name: str) -> pd.DataFrame:
    path = SPLITS / name
    if not path.is_file():
        raise PipelineError(f"{path} not found; run the splits stage first (dvc repro splits)")
    return pd.read_csv(path, keep_default_na=False)


def main() -> None:
    p = load_params("idia_before")
    tau = p["tau"]
    batch_size = p["batch_size"]
    device_name = p["device"]
    workers = p["workers"]
    bf16 = p["bf16"]

    device = resolve_device(device_name, key="idia_before.device")
    identities = read_split_table("identities.csv")
    photos = read_split_table("idia_photos.csv")
    candidates = read_split_table("candidates.csv")
    loaded = load_model(BASE_MODEL, device)

    result = run_idia(loaded, identities, photos, candidates, tau, batch_size, device,
                      bf16=bf16, workers=workers)

    with atomic_dir(IDIA_BEFORE) as tmp:
        result.table.to_csv(tmp / "identities.csv", index=False)
        save_embeddings(tmp / "text_embeddings.safetensors", result.text_emb)
        save_embeddings(tmp / "image_embeddings.safetensors", result.image_emb)
    write_json(metrics_file("idia_before"), result.metrics)
    m = result.metrics
    print(f"IDIA before: TPR {m['identified_members']}/{m['members']}, "
          f"FPR {m['identified_nonmembers']}/{m['nonmembers']} (tau {tau}, {m['candidates']} candidates)")


if __name__ == "__main__":
    run_stage(main)
