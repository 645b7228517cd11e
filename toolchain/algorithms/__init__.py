"""Pure numpy algorithms (palette solvers, fits, packing, metrics) that know nothing of models or files."""
