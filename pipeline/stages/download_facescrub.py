"""Stage download_facescrub: FaceScrub photos + bbox-cropped faces, with a download report."""
from __future__ import annotations

from pathlib import Path

from pipeline.core.atomic import write_json
from pipeline.data.downloading import check_distributor
from pipeline.data.facescrub import download_facescrub
from pipeline.core.errors import ParamError, PipelineError
from pipeline.core.params import load_params
from pipeline.core.stage_runner import run_stage
from pipeline.core.paths import FACESCRUB, metrics_file

SECTION = "download_facescrub"


def main() -> None:
    params = load_params(SECTION)
    lists = params.get("lists")
    if not isinstance(lists, list) or not lists or not all(isinstance(p, str) and p for p in lists):
        raise ParamError(f"{SECTION}.lists", lists, "a non-empty list of paths to FaceScrub list files")
    for path in lists:
        if not Path(path).is_file():
            raise PipelineError(f"{SECTION}.lists: FaceScrub list not found: {path} "
                                "(the lists come from the FaceScrub authors; give their paths here)")
    check_distributor(params["distributor"], f"{SECTION}.distributor")
    report = download_facescrub(
        [Path(p) for p in lists], FACESCRUB, labels=list(lists),
        min_photos=params["min_photos"],
        distributor=params["distributor"],
        spark_master=params["spark_master"],
        processes=params["processes"],
        threads=params["threads"],
        timeout=params["timeout"],
    )
    write_json(metrics_file("download_facescrub"), report)
    print(f"download_facescrub: {report['downloaded']} of {report['rows_read']} photos, "
          f"{report['identities_with_min_photos']} identities with >= {report['min_photos']} photos")


if __name__ == "__main__":
    run_stage(main)
