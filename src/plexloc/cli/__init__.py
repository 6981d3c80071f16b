"""Command-line interface: thin sub-commands over the library."""
