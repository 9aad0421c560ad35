"""Where provisioning writes: the unit's paths under a root ("/" on a unit, a temp dir in tests).

Owners are looked up in that root's /etc/passwd and /etc/group (numeric ids), so the same
code provisions a unit or a throwaway root. Every write is atomic and happens only when the
content, mode or owner differs: a second run changes nothing.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .. import __file__ as _package_file

UNIT_USER, CONSOLE_USER, BROKER_USER = "appliance", "appliance-console", "mosquitto"
DATA_DIR = "/var/lib/appliance"
CONFIG = "/etc/appliance/appliance.toml"
MQTT_DIR = "/etc/appliance/mqtt"
CONSOLE_DIR = "/etc/appliance-console"  # the console's own config folder (deploy/console.example.toml)
BROKER_DIR = "/etc/mosquitto/lfr"
MODELS_DIR = "/opt/appliance/models/cache"
SHARE = "/usr/share/lfr-appliance"
PACKAGE = Path(_package_file).resolve().parent
CHECKOUT = PACKAGE.parent  # a development checkout holds hw/ and deploy/ beside the package


@dataclass(frozen=True)
class Root:
    """The filesystem root being provisioned."""

    path: Path

    def __call__(self, unit_path: str | Path) -> Path:
        """A unit path (absolute, as the unit sees it) inside this root."""
        return self.path / str(unit_path).lstrip("/")

    @property
    def is_live(self) -> bool:
        """True when provisioning the running system itself."""
        return self.path.resolve() == Path("/")

    def _id(self, table: str, name: str) -> int | None:
        try:
            lines = self("/etc/" + table).read_text().splitlines()
        except FileNotFoundError:
            return None
        return next((int(f[2]) for f in (line.split(":") for line in lines) if f[0] == name and len(f) > 2), None)

    def uid(self, user: str) -> int | None:
        """The user's id in this root, None when the user does not exist there."""
        return self._id("passwd", user)

    def gid(self, group: str) -> int | None:
        """The group's id in this root, None when it does not exist there."""
        return self._id("group", group)

    def shared(self, *parts: str) -> Path:
        """A file the package ships under /usr/share/lfr-appliance (or the checkout's copy)."""
        installed = self(SHARE).joinpath(*parts)
        if installed.exists():
            return installed
        checkout = {"profiles": CHECKOUT / "hw", "mosquitto": CHECKOUT / "deploy" / "mosquitto"}[parts[0]]
        return checkout.joinpath(*parts[1:])


def _owner_ok(st: os.stat_result, uid: int | None, gid: int | None) -> bool:
    return (uid is None or st.st_uid == uid) and (gid is None or st.st_gid == gid)


def ensure_dir(path: Path, mode: int, uid: int | None = None, gid: int | None = None) -> bool:
    """Create ``path`` (and parents) with ``mode`` and owner; True when anything changed."""
    changed = not path.is_dir()
    path.mkdir(parents=True, exist_ok=True)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) != mode:
        path.chmod(mode)
        changed = True
    if not _owner_ok(st, uid, gid):
        os.chown(path, -1 if uid is None else uid, -1 if gid is None else gid)
        changed = True
    return changed


def put(path: Path, data: bytes, mode: int, uid: int | None = None, gid: int | None = None) -> bool:
    """Write ``data`` atomically unless the file already holds it with that mode and owner."""
    try:
        st = path.lstat()
        same = (stat.S_ISREG(st.st_mode) and path.read_bytes() == data and stat.S_IMODE(st.st_mode) == mode
                and _owner_ok(st, uid, gid))
    except FileNotFoundError:
        same = False
    if same:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.provisioning")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, mode)
    if uid is not None or gid is not None:
        os.chown(tmp, -1 if uid is None else uid, -1 if gid is None else gid)
    os.replace(tmp, path)
    return True


def chown_tree(path: Path, uid: int | None, gid: int | None) -> bool:
    """Give ``path`` and everything under it to uid:gid; True when anything changed."""
    if uid is None:
        return False
    changed = False
    for item in [path, *path.rglob("*")]:
        st = item.lstat()
        if not _owner_ok(st, uid, gid):
            os.lchown(item, uid, -1 if gid is None else gid)
            changed = True
    return changed
