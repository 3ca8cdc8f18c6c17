"""Sampling a motion residual: the DDIM schedule and loop, DCTInit, motion ids, windows, loops and inversion."""
