"""Cinemo nodes: motion (work in progress)."""

NODES: list = []
