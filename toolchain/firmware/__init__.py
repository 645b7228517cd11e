"""Firmware sources from a compiled model: the model as a C array, arena size, palettes of CPU-path tensors, build fragments; and the firmware check, which runs them on a Cortex-M55 under QEMU."""
