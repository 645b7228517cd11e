"""``toolchain deploy``: the stage runner, stage wiring, the pipeline config, manifests and progress output."""
