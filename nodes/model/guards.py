"""Is a MODEL socket's value a Cinemo model? Errors that name the input and say what to connect instead."""

from __future__ import annotations

from typing import Any

from .base_model import CinemoModel


def is_cinemo_model(model: Any) -> bool:
    """True for a ModelPatcher (MODEL) that wraps a Cinemo model."""
    return isinstance(getattr(model, "model", None), CinemoModel)


def describe_model(model: Any) -> str:
    """A short name for what a MODEL socket holds."""
    inner = getattr(model, "model", None)
    if inner is None:
        return f"a {type(model).__name__}"
    config = getattr(inner, "model_config", None)
    config_name = type(config).__name__ if config is not None else "unknown"
    return f"a {config_name} model ({type(inner).__name__})"


def require_cinemo_model(model: Any, input_name: str) -> None:
    """Raise ``ValueError`` naming ``input_name`` unless ``model`` is a Cinemo MODEL."""
    if not is_cinemo_model(model):
        raise ValueError(
            f"{input_name}: got {describe_model(model)}, not a Cinemo model. Load the Cinemo UNet with "
            "'Cinemo Model Loader' and connect its MODEL here (checkpoint loaders give image models such as SD 1.5)."
        )
