"""What a malicious checkpoint does on unpickling, for the loaders' fuzz tests."""


class PickledCall:
    """Pickles as ``function(*args)``: unpickling it calls ``function``."""

    def __init__(self, function, args) -> None:
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args
