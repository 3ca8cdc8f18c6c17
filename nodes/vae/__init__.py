"""Cinemo's temporal VAE in ComfyUI: finding, converting and loading its weights, and decoding clips with it."""
