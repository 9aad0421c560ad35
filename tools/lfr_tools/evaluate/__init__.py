"""Evaluation: open-set identification accuracy of the unit's own engine.

- metrics.py: TPIR/FPIR, thresholds, confidence intervals, DET (numpy only)
- protocol.py: calibration/test identity split, gallery and probes
- degrade.py: low light, motion blur, small faces, JPEG
- embedding.py: embeddings through the engine, cached per (image, degradation)
- figures.py, scaling.py: the card's figures, FPIR against watchlist size
- run.py, report.py: `appliance eval` and its eval.json, det.png, card.md
- embed_files.py: `appliance embed` for auditors' own protocols
"""
