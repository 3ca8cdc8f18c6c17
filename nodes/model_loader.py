"""Cinemo nodes: model_loader (work in progress)."""

NODES: list = []
