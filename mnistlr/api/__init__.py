"""The api layer: one function per command, called by the CLI and by scripts."""
