"""Vision stages: detect, quality gate, align, embed."""
