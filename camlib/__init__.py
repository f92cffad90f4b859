"""camlib."""
