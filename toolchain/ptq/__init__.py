"""Post-training quantization of a float .tflite to full int8 with ai-edge-quantizer (no TensorFlow).

``config`` (PtqConfig, the calibration source, the I/O type), ``calibration`` (calibration samples from an
.npz or, when asked for explicitly, synthetic ones), ``boundaries`` (int8 or float model inputs/outputs),
``quantize`` (quantize_float_model: prepare, calibrate, quantize, check, measure) and ``result``
(PtqReport). The only package that imports ``ai_edge_quantizer``; it imports tflite and core.
"""
