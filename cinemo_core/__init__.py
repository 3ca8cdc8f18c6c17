"""Host-independent Cinemo: model, checkpoint loading, schedule, DCTInit, motion intensity and sampling.

Nothing in this package imports ComfyUI.
"""
