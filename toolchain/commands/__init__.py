"""One module per CLI verb: ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""
