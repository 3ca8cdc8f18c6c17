"""Cinemo nodes: first_frame (work in progress)."""

NODES: list = []
