"""Reading, validating, querying and editing .tflite models, and running them in LiteRT. Imports only core."""
