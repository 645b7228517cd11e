"""The training side: datasets, tfmot clustering fine-tune, int8 conversion, the bundled example.

The only package that imports TensorFlow, and only inside functions (see tf_env)."""
