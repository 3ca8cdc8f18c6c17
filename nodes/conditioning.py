"""Cinemo nodes: conditioning (work in progress)."""

NODES: list = []
