"""CLI command modules, one per subsystem."""
