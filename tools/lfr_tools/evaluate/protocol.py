"""The open-set protocol on a folder-per-identity data set.

- Identities are split into calibration and test by a hash of the folder name,
  so the split is the same on every machine and never depends on file order.
- In each split, an identity with more than ``gallery_per_id`` images is
  enrolled: its first ``gallery_per_id`` images (sorted by name) form its gallery
  entries and the rest are its mated probes. Every other identity is a
  non-mated identity: all its images are non-mated probes.
- At most ``max_mated_per_id`` mated probes per identity are kept (the first by
  name), so that a few heavily photographed people do not dominate the figures.
- Thresholds are set on the calibration split; the test split reports figures.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from appliance.errors import InputError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CALIBRATION_SHARE = 0.5
# At most this many mated probes per identity: in lfw-dev one person (George_W_Bush)
# would otherwise make 23% of the test split's mated searches.
MAX_MATED_PER_ID = 10
# Salted: lfw-dev itself looks like the half of LFW whose unsalted name hash is
# below 0.5, so an unsalted hash would put every identity on one side.
SPLIT_SALT = b"lfr-appliance/eval-split/v1:"


@dataclass
class Split:
    """One split's gallery, mated probes and non-mated probes (paths and identity names)."""

    name: str
    identities: list[str] = field(default_factory=list)
    gallery: list[tuple[str, Path]] = field(default_factory=list)
    mated: list[tuple[str, Path]] = field(default_factory=list)
    nonmated: list[tuple[str, Path]] = field(default_factory=list)
    mated_capped: int = 0  # mated images left out by the per-identity cap

    def all_paths(self) -> list[Path]:
        """Every image of this split, gallery first."""
        return [p for _, p in self.gallery + self.mated + self.nonmated]

    def counts(self) -> dict:
        """Sizes, for the report."""
        enrolled = {i for i, _ in self.gallery}
        return {"identities": len(self.identities), "enrolled_identities": len(enrolled),
                "nonmated_identities": len({i for i, _ in self.nonmated}),
                "gallery_images": len(self.gallery), "mated_probes": len(self.mated),
                "nonmated_probes": len(self.nonmated), "mated_left_out_by_cap": self.mated_capped}


def split_of(identity: str, calibration_share: float = CALIBRATION_SHARE) -> str:
    """'calibration' or 'test' for an identity name, from the salted SHA-256 of the name."""
    digest = hashlib.sha256(SPLIT_SALT + identity.encode("utf-8")).digest()
    return "calibration" if int.from_bytes(digest[:8], "big") / 2**64 < calibration_share else "test"


def list_identities(dataset: Path) -> dict[str, list[Path]]:
    """Map each identity folder of ``dataset`` to its sorted image paths."""
    dataset = Path(dataset)
    if not dataset.is_dir():
        raise InputError(f"{dataset} is not a folder",
                         fix="pass a folder with one sub-folder of images per identity (e.g. lfw-dev)")
    table = {}
    for folder in sorted(p for p in dataset.iterdir() if p.is_dir()):
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if images:
            table[folder.name] = images
    if not table:
        raise InputError(f"{dataset} has no identity folders with images",
                         fix="lay it out as DATASET/<identity>/<image>.jpg")
    return table


def build_splits(table: dict[str, list[Path]], gallery_per_id: int = 1,
                 calibration_share: float = CALIBRATION_SHARE,
                 max_mated_per_id: int | None = MAX_MATED_PER_ID) -> dict[str, Split]:
    """Assign every identity to a split and every image to gallery, mated or non-mated."""
    if gallery_per_id < 1:
        raise InputError("--gallery-per-id must be at least 1", fix="pass --gallery-per-id 1 or more")
    splits = {"calibration": Split("calibration"), "test": Split("test")}
    for identity, images in table.items():
        split = splits[split_of(identity, calibration_share)]
        split.identities.append(identity)
        if len(images) > gallery_per_id:
            split.gallery += [(identity, p) for p in images[:gallery_per_id]]
            probes = images[gallery_per_id:]
            split.mated += [(identity, p) for p in probes[:max_mated_per_id]]
            split.mated_capped += len(probes[max_mated_per_id:]) if max_mated_per_id else 0
        else:
            split.nonmated += [(identity, p) for p in images]
    for split in splits.values():
        if not split.gallery or not split.nonmated:
            raise InputError(f"the {split.name} split has no enrolled or no non-mated identity",
                             fix="use a data set with more identities, some with two or more images")
    return splits


def load_groups(path: Path) -> dict[str, str]:
    """Read an ``identity,group`` CSV (a header row is allowed) into a mapping."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r and not r[0].startswith("#")]
    except OSError as exc:
        raise InputError(f"cannot read groups file {path}: {exc.strerror}",
                         fix="pass a CSV with rows identity,group") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["identity", "group"]:
        rows = rows[1:]
    bad = [i for i, r in enumerate(rows, 1) if len(r) < 2 or not r[0].strip() or not r[1].strip()]
    if bad:
        raise InputError(f"{path}: rows {bad[:5]} do not have the form identity,group",
                         fix="give every row an identity folder name and a group label")
    return {r[0].strip(): r[1].strip() for r in rows}
