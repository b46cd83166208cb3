"""The `world` stage's two implementations, one layout of data/world/:

- `demo`: render a synthetic world (people, captions, scenes, a zero-shot benchmark);
- `paper`: fetch the paper's real inputs (world.source: paper).
"""
