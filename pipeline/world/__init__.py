"""The synthetic demo world: rendered people and scenes written as real-format inputs.

Entry point: `pipeline.world.build.build_world(params, out_dir)`; name lists in
`pipeline.world.names`.
"""
