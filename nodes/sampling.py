"""Cinemo nodes: sampling (work in progress)."""

NODES: list = []
