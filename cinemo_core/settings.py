"""The method's settings as the paper and the official code use them; every host takes its defaults from here."""

#: The demo app's default slider position (10 of 1..20), i.e. raw motion id 90.
DEFAULT_INTENSITY = 9
DEFAULT_STEPS = 50
MAX_STEPS = 999
DEFAULT_GUIDANCE = 7.5
#: Frames per video, the input image included: what the model was trained on.
TRAINED_FRAMES = 16
DEFAULT_FRAMES = TRAINED_FRAMES
MAX_FRAMES = 64
DEFAULT_WIDTH = 512
DEFAULT_HEIGHT = 320
MIN_SIDE = 64
MAX_SIDE = 2048
DEFAULT_INIT = "dct"
DEFAULT_DCT_LOW_PASS = 0.23
DEFAULT_DCT_NOISE_TIMESTEP = 975
#: Frames the official code decodes per call of the temporal VAE decoder (16 frames decode as 14 + 2).
OFFICIAL_DECODE_CHUNK = 14
#: Motion transfer (the official video-editing script): the edited first frame is noised to t = 985 before the
#: DCT mix, and neither pass uses text guidance.
DEFAULT_EDIT_NOISE_TIMESTEP = 985
DEFAULT_EDIT_LOW_PASS = DEFAULT_DCT_LOW_PASS
DEFAULT_TRANSFER_GUIDANCE = 1.0
#: Videos longer than TRAINED_FRAMES are sampled in context windows of TRAINED_FRAMES - 1 generated frames (every
#: window also gets the input image); overlap, schedule and fuse method (ComfyUI's names) chosen by measurement
#: (README, "Long videos and loops").
CONTEXT_WINDOW_OVERLAP = 4
CONTEXT_WINDOW_SCHEDULE = "standard_uniform"
CONTEXT_WINDOW_FUSE = "relative"


class SettingError(ValueError):
    """A setting outside its rule. ``setting`` is its field name in ``AnimationSettings`` (``"num_frames"``,
    ``"seed"``, ...), so that each host can name it its own way (a CLI flag, a node input)."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting
