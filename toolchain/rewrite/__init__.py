"""The re-clustering rewriter: settings, fits, choosing K per tensor, bias correction, verification, inspect.

Imports tflite and algorithms; it never imports targets: size estimates and compiles are passed in."""
