"""The demo world: synthetic people and scenes rendered as real-format inputs (no network).

Entry point `build.build_world(params, out_dir)`; name lists in `names`.
"""
