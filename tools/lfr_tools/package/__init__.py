"""Packaging the runtime for a unit: the pinned wheel lock per architecture and `make deb`."""
