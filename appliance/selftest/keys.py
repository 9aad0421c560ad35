"""Keys: the unit's keys are present, 0600 in a 0700 folder, owned by the service user, loadable."""
from __future__ import annotations

import pwd
import stat
from pathlib import Path

from ..keystore import unit_keystore
from ..keystore.file import AGE_FILE, SIGNING_FILE, fingerprint
from .base import CheckResult, SelfTestContext, failed, passed

NAME = "keys"
KEY_FILES = (SIGNING_FILE, AGE_FILE)


def expected_owner(ctx: SelfTestContext) -> tuple[int, str]:
    """The service user's uid and name; where that user does not exist (a development machine,
    not an installed unit), the owner of the data directory."""
    if ctx.service_uid is not None:
        return ctx.service_uid, f"{ctx.service_user} (uid {ctx.service_uid})"
    try:
        return pwd.getpwnam(ctx.service_user).pw_uid, ctx.service_user
    except KeyError:
        uid = ctx.data_dir.stat().st_uid
        try:
            return uid, f"{pwd.getpwuid(uid).pw_name} (owner of {ctx.data_dir}; no user {ctx.service_user!r} here)"
        except KeyError:
            return uid, f"uid {uid}"


def _problem(path: Path, want_mode: int, uid: int, owner: str) -> str | None:
    """Why ``path`` is unsafe, or None."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        return f"{path} is missing"
    except PermissionError:
        return f"{path} cannot be read by this user"
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symlink"
    if stat.S_IMODE(st.st_mode) != want_mode:
        return f"{path} has mode {oct(stat.S_IMODE(st.st_mode))}, expected {oct(want_mode)}"
    if st.st_uid != uid:
        return f"{path} is owned by uid {st.st_uid}, expected {owner}"
    return None


def check(ctx: SelfTestContext) -> CheckResult:
    """Modes and owners of the key folder and files, then load both keys."""
    root = ctx.data_dir / "keys"
    uid, owner = expected_owner(ctx)
    problems = [p for p in [_problem(root, 0o700, uid, owner)]
                + [_problem(root / name, 0o600, uid, owner) for name in KEY_FILES] if p]
    if problems:
        fix = ("run `appliance provision` (or `appliance keys init` on a new unit), then "
               f"chown -R {ctx.service_user}: {root}; chmod 700 {root}; chmod 600 {root}/*")
        return failed(NAME, "; ".join(problems), fix)
    store = unit_keystore(ctx.cfg)
    store.age_recipient()  # parses the age identity
    return passed(NAME, f"signing key {fingerprint(store.signing_public_raw())} and age identity in {root}, "
                        f"0600 in a 0700 folder, owner {owner}")
