"""Palette tables of weight tensors: palettes.json/.npz, C sources and the TFLM LUT-compressed model."""
