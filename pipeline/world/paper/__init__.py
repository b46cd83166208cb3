"""The paper's world: the real inputs (FaceScrub lists, LAION-Aesthetics parquet, occurrence
counts, SSA/Census names, ImageNetV2) fetched into the same layout as the demo world.

Entry point `build.build_paper_world(sources, out_dir)`; downloads in `sources`.
"""
