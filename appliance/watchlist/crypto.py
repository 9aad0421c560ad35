"""The two real cryptographic parts of a bundle: age encryption and an Ed25519 signature.

age (via pyrage, the Python binding of rage) encrypts the payload to the unit's
X25519 recipient; Ed25519 (``cryptography``) signs the manifest. Nothing here is
home-made: this module only frames calls to those libraries and turns their
errors into WatchlistError.
"""
from __future__ import annotations

import hashlib
import io

import pyrage
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import WatchlistError

SIGNATURE_CONTEXT = b"lfr-watchlist-manifest/1\x00"
"""Domain separation: a manifest signature cannot be replayed as any other signed object."""


def recipient_fingerprint(recipient: str) -> str:
    """Hex SHA-256 of an age recipient string (age1...): names the unit a bundle is for."""
    return hashlib.sha256(recipient.strip().encode("ascii")).hexdigest()


def encrypt_to(recipient: str, plaintext: bytes) -> bytes:
    """Encrypt ``plaintext`` to one age X25519 recipient (binary age format)."""
    try:
        parsed = pyrage.x25519.Recipient.from_str(recipient.strip())
    except pyrage.RecipientError:
        raise WatchlistError(f"'{recipient[:20]}...' is not an age X25519 recipient",
                             fix="copy the unit's recipient from `appliance keys show` (age1...)") from None
    return pyrage.encrypt(plaintext, [parsed])


class _ViewReader:
    """A reader over a bytearray without copying it whole (so no second full plaintext copy)."""

    def __init__(self, buf: bytes | bytearray | memoryview) -> None:
        self.view = memoryview(buf)
        self.pos = 0

    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes (all that is left when ``size`` < 0)."""
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.pos + size)
        chunk = bytes(self.view[self.pos:end])
        self.pos = end
        return chunk

    def readinto(self, target: bytearray) -> int:
        """Fill ``target`` from the buffer; return the count copied."""
        count = min(len(target), len(self.view) - self.pos)
        target[:count] = self.view[self.pos:self.pos + count]
        self.pos += count
        return count


def reseal_to(recipient: str, plaintext: bytearray) -> bytes:
    """Encrypt a plaintext held in a bytearray to ``recipient`` (the unit's per-deployment key)."""
    out = io.BytesIO()
    reader = _ViewReader(plaintext)
    try:
        pyrage.encrypt_io(reader, out, [pyrage.x25519.Recipient.from_str(recipient)])
    finally:
        reader.view.release()
    return out.getvalue()


class _FixedBuffer:
    """A writer into one preallocated bytearray, so the plaintext can be zeroed after use."""

    def __init__(self, capacity: int) -> None:
        self.buf = bytearray(capacity)
        self.used = 0

    def write(self, chunk: bytes) -> int:
        """Append ``chunk``; the plaintext can never exceed the ciphertext length."""
        end = self.used + len(chunk)
        if end > len(self.buf):
            raise WatchlistError("decrypted payload is larger than its ciphertext", fix="rebuild the bundle")
        self.buf[self.used:end] = chunk
        self.used = end
        return len(chunk)

    def flush(self) -> None:
        """Nothing to flush: the buffer is memory."""


AGE_VERSION_LINE = b"age-encryption.org/v1\n"
_HEADER_LIMIT = 64 * 1024


def check_stanza_shape(ciphertext: bytes | memoryview) -> None:
    """Refuse a binary age header whose stanza bodies break the spec's line rule.

    The age spec requires every stanza body to be full 64-column lines ended by
    one shorter (possibly empty) line. rage 0.11 (under pyrage 1.4) tolerates a
    missing final line, so the C2SP vectors stanza_missing_body and
    stanza_missing_final_line would decrypt; this shape check (no cryptography,
    only line lengths) makes the unit refuse them as the spec says.
    """
    head = bytes(ciphertext[:_HEADER_LIMIT])
    if not head.startswith(AGE_VERSION_LINE):
        return  # armored or not age at all: rage decides
    end = head.find(b"\n--- ")
    if end < 0:
        return  # no header end in reach: rage reports the header as invalid
    body: list[bytes] | None = None
    for line in head[len(AGE_VERSION_LINE):end].split(b"\n") + [b"---"]:
        if line.startswith(b"-> ") or line == b"---":
            if body is not None and (not body or len(body[-1]) >= 64 or any(len(b) != 64 for b in body[:-1])):
                raise WatchlistError("age header stanza does not end with a short body line (malformed file)",
                                     fix="rebuild the bundle with `appliance watchlist build`")
            body = []
        elif body is not None:
            body.append(line)


def decrypt_with(identities: list[str], ciphertext: bytes | memoryview) -> bytearray:
    """Decrypt an age file with X25519 identity strings into a zeroable bytearray.

    The caller owns the result and should overwrite it (``buf[:] = bytes(len(buf))``)
    once parsed. Raises WatchlistError when no identity matches or the file is
    malformed or altered (age authenticates the header and every payload chunk).
    """
    check_stanza_shape(ciphertext)
    keys = [pyrage.x25519.Identity.from_str(text.strip()) for text in identities]
    out = _FixedBuffer(len(ciphertext))
    try:
        pyrage.decrypt_io(_ViewReader(ciphertext), out, keys)
    except (pyrage.DecryptError, OSError) as exc:  # rage reports a bad payload chunk as an I/O error
        out.buf[:] = bytes(len(out.buf))
        reason = str(exc).splitlines()[0] if str(exc) else "decryption failed"
        raise WatchlistError(f"cannot decrypt the watchlist payload for this unit: {reason}",
                             fix="the bundle must be built for this unit's recipient "
                                 "(`appliance keys show`) and copied unaltered") from None
    del out.buf[out.used:]  # shrink in place: no second copy of the plaintext
    return out.buf


def sign_manifest(key: Ed25519PrivateKey, manifest_bytes: bytes) -> bytes:
    """Ed25519 signature (64 bytes) over the canonical manifest bytes."""
    return key.sign(SIGNATURE_CONTEXT + manifest_bytes)


def signature_valid(key: Ed25519PublicKey, manifest_bytes: bytes, signature: bytes) -> bool:
    """True when ``signature`` is ``key``'s signature over ``manifest_bytes``."""
    try:
        key.verify(signature, SIGNATURE_CONTEXT + manifest_bytes)
    except InvalidSignature:
        return False
    return True
