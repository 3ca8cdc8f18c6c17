"""Cinemo nodes: temporal_vae (work in progress)."""

NODES: list = []
