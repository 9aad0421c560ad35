"""`appliance eval` and `appliance embed`: the unit's accuracy, measured with its own engine."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance import inference as inference_registry
from appliance.config import Config, load_config
from appliance.errors import UsageError

from ..paths import LFW_DEV


def build_engine(config: str | None, backend: str | None, embedder: str = "fp32"):
    """The unit's FaceEngine for evaluation: whole-image detection (no tiles) on single photos."""
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415 - loads the inference runtime

    cfg = load_config(config) if config else Config()
    detect = cfg.detect.model_copy(update={"tile_sizes": [], "whole_frame": True})
    inference = inference_registry.settings_for(backend, cfg.inference) if backend else cfg.inference
    cfg = cfg.model_copy(update={"detect": detect, "inference": inference})
    if embedder == "int8":
        from lfr_tools.quantize import int8_engine  # noqa: PLC0415

        return int8_engine(cfg)
    return FaceEngine.from_config(cfg)


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise UsageError(f"--watchlist-sizes '{text}' is not a list of integers",
                         fix="pass e.g. --watchlist-sizes 100,1000,10000") from None
    if not sizes or min(sizes) < 1:
        raise UsageError("--watchlist-sizes needs positive sizes", fix="pass e.g. 100,1000,10000")
    return sizes


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the open-set evaluation and print the headline figures."""
    from lfr_tools.evaluate import protocol  # noqa: PLC0415
    from lfr_tools.evaluate.run import EvalOptions, run_eval  # noqa: PLC0415

    opts = EvalOptions(gallery_per_id=args.gallery_per_id, watchlist_sizes=_sizes(args.watchlist_sizes),
                       groups=protocol.load_groups(Path(args.groups)) if args.groups else None,
                       degradations=() if args.no_degradations else EvalOptions().degradations,
                       max_identities=args.max_identities, max_images_per_id=args.max_images_per_id,
                       progress=not args.quiet,
                       extra={"backend": args.backend or "config", "embedder": args.embedder})
    engine = build_engine(args.config, args.backend, args.embedder)
    doc = run_eval(Path(args.dataset), Path(args.out), engine, opts)
    if args.card:
        from lfr_tools.evaluate.card import write_card  # noqa: PLC0415

        runtime = {"embedder_backend": getattr(engine.embedder.model, "backend", "?"),
                   "embedder": args.embedder, "detector": "whole image, no tiles",
                   "ms_per_image": doc["ms_per_image"], "load_average_1min": doc["load_average_1min"]}
        write_card(doc, Path(args.card), Path(args.card).stem, runtime)
    print(json.dumps({"model_id": doc["model_id"], "runtime_seconds": doc["runtime_seconds"],
                      "thresholds": doc["thresholds"], "tpir_at_fpir": doc["tpir_at_fpir"],
                      "rank1": doc["test"]["rank1"], "out": args.out}, indent=2))
    return 0


def cmd_embed(args: argparse.Namespace) -> int:
    """Embed the most central face of each image into an .npz file."""
    from lfr_tools.evaluate.embed_files import embed_files  # noqa: PLC0415

    engine = build_engine(args.config, args.backend, args.embedder)
    print(json.dumps(embed_files(args.paths, Path(args.out), engine, progress=not args.quiet)))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """Build the int8 embedder, calibrated on the calibration split's aligned faces."""
    from lfr_tools.quantize import build_from_dataset  # noqa: PLC0415

    engine = build_engine(args.config, args.backend)
    print(json.dumps(build_from_dataset(engine, Path(args.dataset), args.faces), indent=2))
    return 0


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="appliance TOML config (default: built-in defaults)")
    p.add_argument("--backend", choices=inference_registry.names(), help="override [inference] backend")
    p.add_argument("--embedder", choices=["fp32", "int8"], default="fp32",
                   help="int8: the quantized ONNX embedder built by `appliance quantize`")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the eval and embed commands."""
    p = sub.add_parser("eval", help="open-set accuracy (TPIR at FPIR) on a folder-per-identity data set")
    p.add_argument("dataset", help="folder with one sub-folder of images per identity (e.g. lfw-dev)")
    p.add_argument("--out", required=True, help="output folder for eval.json, det.png, card.md")
    p.add_argument("--gallery-per-id", type=int, default=1, help="enrolment images per identity")
    p.add_argument("--watchlist-sizes", default="100,1000,10000", help="comma-separated sizes")
    p.add_argument("--groups", help="CSV identity,group for per-group rows (G9)")
    p.add_argument("--no-degradations", action="store_true", help="clean images only (quick)")
    p.add_argument("--max-identities", type=int, help="evaluate a deterministic subset of identities")
    p.add_argument("--max-images-per-id", type=int, help="cap images per identity")
    p.add_argument("--card", help="also write the accuracy card JSON here (models/accuracy/NAME.json)")
    _engine_args(p)
    p.set_defaults(func=cmd_eval)
    p = sub.add_parser("embed", help="embed the most central face of each image into an .npz")
    p.add_argument("paths", nargs="+", help="image files or folders (walked)")
    p.add_argument("--out", required=True, help="output .npz file")
    _engine_args(p)
    p.set_defaults(func=cmd_embed)
    p = sub.add_parser("quantize", help="build the int8 ONNX embedder into models/cache (never committed)")
    p.add_argument("--dataset", default=str(LFW_DEV),
                   help="folder-per-identity set; its calibration split supplies the faces")
    p.add_argument("--faces", type=int, default=512, help="number of calibration faces")
    _engine_args(p)
    p.set_defaults(func=cmd_quantize)
