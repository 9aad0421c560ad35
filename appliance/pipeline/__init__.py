"""Pipeline stages after the face engine: track, match, decide, and the runner."""
