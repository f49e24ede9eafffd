"""The Stage 1 stages. ``pipelines/stage1.py`` strings them together top to bottom.

Each stage reads the previous stage's artifacts from disk and writes its own (with provenance)
through :class:`cleanroom.artifacts.StageWriter`; none reaches into another stage's objects.
"""
