"""Thin DVC stage entry points: `python -m pipeline.stages.<name>`.

Each reads its params section, calls the library, and writes its outputs atomically.
"""
