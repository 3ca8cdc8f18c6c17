"""The standalone tool: the pipeline from image to video file, motion transfer, video I/O, the CLI and the demo."""
