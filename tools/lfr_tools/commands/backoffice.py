"""Back-office commands: `appliance authority init|show` and `appliance watchlist build`.

They run off the device: the authority's private key never reaches a unit.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from appliance.authority import key_fingerprint, public_string
from appliance.commands import command_group
from appliance.config import Config, load_config
from appliance.errors import BackendUnavailable, UsageError
from appliance.watchlist.manifest import parse_time

from ..backoffice.authority import init_authority, load_authority
from ..backoffice.build import build_bundle
from ..backoffice.seal import Operation


def cmd_authority_init(args: argparse.Namespace) -> int:
    """Create a back-office authority key pair (run off the device)."""
    text = init_authority(Path(args.dir))
    print(f"created authority key in {args.dir}")
    print(f"add to each unit's [watchlist] trusted_authorities: \"{text}\"")
    return 0


def cmd_authority_show(args: argparse.Namespace) -> int:
    """Print the authority public key line for the units' config."""
    key = load_authority(Path(args.dir)).public_key()
    print(f"authority key:         {public_string(key)}")
    print(f"authority fingerprint: {key_fingerprint(key)}")
    return 0


def enrolment_engines(config: str | None, models: str | None = None) -> list:
    """One FaceEngine per embedding model the bundle carries (whole-image detection, for portraits).

    Without ``models`` the unit config's own model; else a comma-separated list of model
    names: "mobilefacenet" (the CPU embedder) and the Hailo embedders of models/manifest.toml
    ("arcface_mobilefacenet-hailo8l", ...), which need a Hailo card of that chip here.
    """
    from appliance.vision.engine import FaceEngine  # noqa: PLC0415 - loads the inference runtime

    cfg = load_config(config) if config else Config()
    cfg = cfg.model_copy(update={"detect": cfg.detect.model_copy(update={"tile_sizes": [], "whole_frame": True})})
    if not models:
        return [FaceEngine.from_config(cfg)]
    names = [n.strip() for n in models.split(",") if n.strip()]
    if len(set(names)) != len(names) or not names:
        raise UsageError(f"--models {models!r} must name each model once", fix="e.g. --models mobilefacenet,arcface_mobilefacenet-hailo8l")
    engines: list = []
    try:
        for name in names:
            engines.append(_engine_for(name, cfg))
    except BaseException:
        for engine in engines:  # a later model failed: release the ones already loaded
            engine.close()
        raise
    return engines


def _engine_for(name: str, cfg: Config):
    from appliance import inference  # noqa: PLC0415
    from appliance.inference import hailo, litert  # noqa: PLC0415
    from appliance.modelstore import load_manifest  # noqa: PLC0415
    from appliance.vision.engine import EMBEDDER, FaceEngine  # noqa: PLC0415

    if name == EMBEDDER:
        return FaceEngine.from_config(cfg.model_copy(update={"inference": inference.settings_for(litert.KEY, cfg.inference)}))
    spec = load_manifest().get(name)
    if spec is None or not spec.npu or spec.role != "embedder":
        known = [EMBEDDER] + [n for n, s in load_manifest().items() if s.npu and s.role == "embedder"]
        raise UsageError(f"--models: unknown embedding model '{name}'", fix=f"choose from {', '.join(known)}")
    if hailo.probe() is not None:
        raise BackendUnavailable(f"enrolling with {name} needs a Hailo {spec.chip} card here: {hailo.probe()}",
                                 fix="run the build on a machine with that card (e.g. a provisioned unit in the depot)")
    from appliance.vision.npu import open_npu_engine  # noqa: PLC0415

    settings = hailo.Settings(chip=spec.chip, embedder=name.rsplit("-", 1)[0], models_dir=cfg.inference.models_dir)
    return open_npu_engine(cfg, settings)


def cmd_build(args: argparse.Namespace) -> int:
    """Enrol the CSV's entries, encrypt to the unit, sign with the authority key, write the bundle."""
    if args.version < 1:
        raise UsageError(f"--version {args.version} must be 1 or more", fix="pass --version 1 for a first bundle")
    parse_time(args.not_before, "--not-before")
    parse_time(args.not_after, "--not-after")
    operation = Operation(args.deployment_id, args.officer, args.not_before, args.not_after,
                          args.recipient, args.version)
    authority = load_authority(Path(args.authority_dir))
    engines = enrolment_engines(args.config, args.models)
    try:
        report = build_bundle(Path(args.csv), Path(args.images), operation, engines,
                              authority, Path(args.out), show_progress=not args.quiet)
    finally:
        for engine in engines:
            engine.close()
    if args.report:
        Path(args.report).write_text(json.dumps(report.to_json(), indent=2))
    print(f"wrote {args.out}: {report.accepted} of {report.rows} rows enrolled, "
          f"{report.bundle_bytes} bytes, sha256 {report.bundle_sha256}")
    for reason, count in report.by_reason().items():
        print(f"  rejected {count:5d}  {reason}")
    for reject in report.rejects if args.verbose_rejects else []:
        print(f"  row {reject.row}: {reject.subject_ref} {reject.image}: {reject.reason}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add `authority init|show` and `watchlist build`."""
    p = sub.add_parser("authority", help="back office: the key that signs watchlist bundles")
    asub = p.add_subparsers(dest="authority_command", metavar="ACTION", required=True)
    for name, func, text in (("init", cmd_authority_init, "create an authority key pair"),
                             ("show", cmd_authority_show, "print the public key for units' configs")):
        q = asub.add_parser(name, help=text)
        q.add_argument("--dir", required=True, help="folder holding the authority key (0700)")
        q.set_defaults(func=func)
    wsub = command_group(sub, "watchlist", "build (back office) or inspect a signed, encrypted watchlist bundle")
    q = wsub.add_parser("build", help="enrol images from a CSV and seal a bundle for one unit and deployment")
    q.add_argument("--csv", required=True, help="columns: subject_ref,image,category,image_source,"
                                                "capture_date,review_by")
    q.add_argument("--images", required=True, help="folder the CSV's image names are relative to")
    q.add_argument("--deployment-id", required=True)
    q.add_argument("--officer", required=True, help="authorising officer id, e.g. 'Supt-4521'")
    q.add_argument("--not-before", required=True, help="UTC, e.g. 2026-11-28T08:00:00Z")
    q.add_argument("--not-after", required=True, help="UTC, e.g. 2026-11-28T20:00:00Z")
    q.add_argument("--recipient", required=True, help="the unit's age recipient (`appliance keys show`)")
    q.add_argument("--authority-dir", required=True, help="folder of the authority key")
    q.add_argument("--version", type=int, default=1, help="bundle version (raise it to re-issue)")
    q.add_argument("--out", required=True, help="bundle file to write (.lfrwl)")
    q.add_argument("--report", help="write the per-row report as JSON here")
    q.add_argument("--config", help="the unit's config (same detector and embedder)")
    q.add_argument("--models", help="embed with each of these models (comma-separated, e.g. "
                                    "mobilefacenet,arcface_mobilefacenet-hailo8l: the unit's NPU model and its "
                                    "CPU fallback); default: the config's model")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--verbose-rejects", action="store_true", help="print every rejected row")
    q.set_defaults(func=cmd_build)
