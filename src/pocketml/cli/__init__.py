"""The `pocketml` command line (see `pocketml --help`)."""
