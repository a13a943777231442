"""What the decoder can do with a family's files (declared in nvcodec/families; no torch here)."""

FRAMEWISE = "framewise"  # renders whole frames at the coded size
PIXELWISE = "pixelwise"  # renders any (x, y, t)
ANY_SCALE = "any_scale"  # can render at another resolution
ANY_TIME = "any_time"  # can render between coded frames
LAYERS = "layers"  # a softmax mix of parallel layers: segmentation maps, layer removal
