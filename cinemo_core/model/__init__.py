"""The Cinemo UNet: its architecture, layers and host hooks, and loading its weights and the released folder."""
