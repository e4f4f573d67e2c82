"""The I/O layer: the only code that opens raster, vector and model files."""
