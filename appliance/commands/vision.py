"""Vision commands: run, detect."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2

from ..config import Config, load_config
from ..vision.engine import FaceEngine, decode_image


def cmd_run(args: argparse.Namespace) -> int:
    """Run the unit on the configured source; alerts also as JSON lines on stdout."""
    from ..daemon import serve  # noqa: PLC0415
    from ..sinks import stdout_sink  # noqa: PLC0415

    cfg = load_config(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(cfg.runner.log_level.upper())
    result = serve(cfg, sinks={"stdout": stdout_sink})
    print(json.dumps({"counters": dict(result.counters)}, sort_keys=True), file=sys.stderr)
    if result.error:
        raise result.error
    return 0


def cmd_detect(args: argparse.Namespace) -> int:
    """Detect faces in one image; print them, optionally draw them into --out."""
    cfg = load_config(args.config) if args.config else Config()
    engine = FaceEngine.from_config(cfg)
    image = decode_image(args.image)
    faces = engine.faces(image)
    rows = [{"box": [round(float(v), 1) for v in f.det.box], "score": round(f.det.score, 3),
             "quality": f.quality, "reject": f.reject} for f in faces]
    if args.json:
        print(json.dumps({"image": args.image, "faces": rows}, indent=2))
    else:
        print(f"{args.image}: {len(rows)} face(s)")
        for i, r in enumerate(rows):
            status = "ok" if r["reject"] is None else f"rejected ({r['reject']})"
            print(f"  #{i}: box={r['box']} score={r['score']} height={r['quality']['height_px']}px {status}")
    if args.out:
        _annotate(image, faces, Path(args.out))
    return 0


def _annotate(image, faces, out: Path) -> None:
    for f in faces:
        x1, y1, x2, y2 = [int(v) for v in f.det.box]
        color = (0, 200, 0) if f.reject is None else (0, 0, 230)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, 2)
        for x, y in f.det.keypoints.astype(int):
            cv2.circle(image, (int(x), int(y)), 2, (255, 200, 0), -1)
    if not cv2.imwrite(str(out), image):
        from ..errors import InputError  # noqa: PLC0415

        raise InputError(f"cannot write {out}", fix="give a writable path ending in .png or .jpg")


def register(sub: argparse._SubParsersAction) -> None:
    """Add run and detect."""
    p = sub.add_parser("run", help="run the pipeline (alerts as JSON lines on stdout)")
    p.add_argument("--config", required=True, help="TOML config, e.g. deploy/appliance.example.toml")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("detect", help="detect faces in one image (technician check)")
    p.add_argument("image")
    p.add_argument("--out", help="write an annotated copy here (.png/.jpg)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--config", help="TOML config (default: built-in defaults)")
    p.set_defaults(func=cmd_detect)
