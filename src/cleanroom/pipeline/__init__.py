"""The Stage 1 stages. :mod:`cleanroom.pipeline.stage1` strings them together top to bottom (``pipelines/stage1.py``
in a checkout is the script that runs it); the profiles and the constitution ship here as package data.

Each stage reads the previous stage's artifacts from disk and writes its own (with provenance)
through :class:`cleanroom.artifacts.StageWriter`; none reaches into another stage's objects.
"""
