"""Firmware sources from a compiled model: the model as a C array, arena size, palettes of CPU-path tensors, build fragments."""
