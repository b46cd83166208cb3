"""Backdoor-based unlearning of identities from CLIP, as a DVC pipeline.

Library code lives in the subpackages (world, data, models, attack, defenses,
evaluation, reports); `pipeline.stages` holds the thin DVC stage entry points.
"""
