"""Hardware profiles, running Vela and reading its outputs, the Ethos-N estimate, and compile.json."""
