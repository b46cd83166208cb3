"""Does this model know me? The Identity Inference Attack for given names and photo folders,
against any open_clip model, with the same code as the `idia_before` stage.

    python -m pipeline.requests.knows --model data/base_model --photos my_photos --name "Ella Anderson"
    python -m pipeline.requests.knows --arch ViT-B-32 --pretrained laion400m_e32 --photos my_photos \\
        --name "Ella Anderson" --candidates data/splits/candidates.csv

Photos: `<photos>/<name folder>/*.jpg|jpeg|png`, the folder named the way the FaceScrub stage
names it (spaces become `_`; pipeline.core.safepaths.slug). Candidates: the names the attack
chooses among (a CSV with a `name` column; default the splits stage's); a given name that is
not among them is added, and the output says so. Unreadable photos are counted and listed, not
fatal. Per person: correct templates out of 21 and the verdict (identified when >= tau).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
from PIL import Image, UnidentifiedImageError

from pipeline.attack.run import run_idia
from pipeline.attack.templates import IDIA_TEMPLATES
from pipeline.core.errors import PipelineError
from pipeline.core.paths import SPLITS
from pipeline.core.safepaths import slug

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


def person_photos(folder: Path, name: str) -> tuple[list[Path], list[str]]:
    """(readable photos, unreadable files) of one person's folder under `folder`."""
    sub, why = slug(name)
    if sub is None:
        raise PipelineError(f"--name {name!r}: {why}")
    where = Path(folder) / sub
    if not where.is_dir():
        raise PipelineError(f"no photo folder for {name!r}: expected {where}/ with .jpg/.jpeg/.png files")
    good, bad = [], []
    for path in sorted(p for p in where.iterdir() if p.is_file()):
        if path.suffix.lower() not in PHOTO_SUFFIXES:
            continue
        try:
            with Image.open(path) as img:
                img.convert("RGB").load()
            good.append(path)
        except (UnidentifiedImageError, OSError) as exc:
            bad.append(f"{path.name}: {str(exc).splitlines()[0][:120]}")
    if not good:
        raise PipelineError(f"{where}: no readable photo of {name!r} ({len(bad)} unreadable: "
                            f"{'; '.join(bad[:3]) or 'the folder holds no .jpg/.jpeg/.png'})")
    return good, bad


def ask(loaded, names: list[str], photos_dir: Path, candidates: list[str], *, tau: int = 1,
        batch_size: int = 64, device="cpu") -> dict:
    """Per person: correct templates, identified, photos used, unreadable files; and which
    names had to be added to the candidates."""
    if not names:
        raise PipelineError("give at least one --name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PipelineError(f"--name {dupes[0]!r} is given twice")
    added = [n for n in names if n not in set(candidates)]
    all_candidates = list(candidates) + added
    rows, unreadable = [], {}
    for name in names:
        good, bad = person_photos(photos_dir, name)
        rows += [{"name": name, "path": str(p)} for p in good]
        unreadable[name] = bad
    photos = pd.DataFrame(rows)
    identities = pd.DataFrame({"name": names, "member": [True] * len(names), "count": [0] * len(names)})
    result = run_idia(loaded, identities, photos, pd.DataFrame({"name": all_candidates}), tau, batch_size, device)
    people = {}
    for row in result.table.itertuples():
        people[row.name] = {"correct_templates": int(row.correct_templates), "templates": len(IDIA_TEMPLATES),
                            "identified": bool(row.identified),
                            "photos": int((photos["name"] == row.name).sum()),
                            "unreadable": unreadable[row.name]}
    return {"tau": tau, "candidates": len(all_candidates), "added_to_candidates": added, "people": people}


def verdict_line(name: str, person: dict, tau: int) -> str:
    says = ("the model knows this person" if person["identified"]
            else "the attack does not identify this person")
    extra = f", {len(person['unreadable'])} unreadable file(s) skipped" if person["unreadable"] else ""
    return (f"{name}: {person['correct_templates']}/{person['templates']} templates correct "
            f"({person['photos']} photos{extra}): {says} (rule: identified when >= {tau})")


def load(args, device):
    if args.model:
        from pipeline.models.checkpoint import load_model
        return load_model(Path(args.model), device)
    import open_clip

    from pipeline.models.checkpoint import LoadedModel
    from pipeline.models.pretrained import load_pretrained
    model, cfg = load_pretrained(args.arch, args.pretrained, device)
    preprocess = open_clip.image_transform(model.visual.image_size, is_train=False)
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=open_clip.get_tokenizer(args.arch),
                       arch=args.arch, model_cfg=cfg)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = ap.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a checkpoint folder (model.safetensors + <arch>.json), e.g. data/defended/text-k4")
    which.add_argument("--arch", help="an open_clip architecture, with --pretrained")
    ap.add_argument("--pretrained", help="with --arch: an open_clip tag or a local weights file")
    ap.add_argument("--name", action="append", default=[], help="a person's full name (repeat for several)")
    ap.add_argument("--photos", required=True, type=Path, help="folder with one sub-folder per person")
    ap.add_argument("--candidates", type=Path, default=SPLITS / "candidates.csv",
                    help="CSV with a name column: the names the attack chooses among")
    ap.add_argument("--tau", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", action="store_true", help="print the answer as JSON")
    args = ap.parse_args(argv)
    try:
        if args.arch and not args.pretrained:
            raise PipelineError("--arch needs --pretrained (an open_clip tag or a local weights file)")
        if not args.candidates.is_file():
            raise PipelineError(f"candidates file {args.candidates} not found; give --candidates "
                                "(a CSV with a name column) or run `dvc repro splits`")
        candidates = pd.read_csv(args.candidates, keep_default_na=False)
        if "name" not in candidates.columns:
            raise PipelineError(f"{args.candidates} has no name column")
        answer = ask(load(args, args.device), args.name, args.photos, candidates["name"].astype(str).tolist(),
                     tau=args.tau, batch_size=args.batch_size, device=args.device)
    except PipelineError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(answer, indent=2))
        return 0
    if answer["added_to_candidates"]:
        print(f"added to the {answer['candidates'] - len(answer['added_to_candidates'])} candidates: "
              + ", ".join(answer["added_to_candidates"]))
    for name, person in answer["people"].items():
        print(verdict_line(name, person, answer["tau"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
