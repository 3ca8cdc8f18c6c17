"""How ComfyUI sees the Cinemo UNet: the BaseModel, its config, attention, guards, model patches and its loader."""
