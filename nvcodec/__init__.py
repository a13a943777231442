"""nvcodec: an implicit-neural-representation video codec with a specified .nvc bitstream."""

__version__ = "0.1.0"
