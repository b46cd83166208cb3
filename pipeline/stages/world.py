"""Stage `world`: the pipeline's inputs in data/world/, in the same layout in both profiles.

world.source = demo: render the synthetic world as real-format inputs (no network).
world.source = paper: fetch the real inputs named in the `sources:` section (pipeline.world.paper.build).
"""
from __future__ import annotations


from pipeline.core.atomic import atomic_dir
from pipeline.data.filler_names import write_filler_names
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.world.demo.build import build_world
from pipeline.world.demo import names
from pipeline.core.world_params import world_config
from pipeline.core.paths import WORLD


def main() -> None:
    params = load_params("world")
    source = params["source"]
    if source == "paper":
        from pipeline.world.paper.build import build_paper_world, preflight, read_sources_params

        sources = load_params("sources")
        preflight(read_sources_params(sources))  # seconds, before touching the output
    else:
        world_config(params)  # fail on bad params before touching the output
    with atomic_dir(WORLD) as tmp:
        if source == "paper":
            build_paper_world(sources, tmp)
        else:
            build_world(params, tmp)
            # the splits stage draws candidate filler names from here, in both profiles
            write_filler_names(tmp / "filler_names.csv", names.FIRST_NAMES_MALE, names.FIRST_NAMES_FEMALE,
                               names.LAST_NAMES)
    print(f"world: wrote {WORLD} ({source} inputs)")


if __name__ == "__main__":
    run_stage(main)
