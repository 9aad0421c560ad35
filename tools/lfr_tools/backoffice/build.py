"""Build a watchlist bundle in the back office: CSV + images -> enrol -> seal.

CSV columns (header row required): ``subject_ref, image, category,
image_source, capture_date, review_by``. ``image`` is a file name relative to
the images folder; dates are YYYY-MM-DD. A row missing its source, date or
category is refused (G4). Every image is enrolled with the unit's own engine
(``FaceEngine.enrol_image``): no face, several faces or low quality is a per-row
reject with its reason.

Templates: when a subject has several rows, the entry's embedding is the
normalised mean of its most recent suitable photos (at most ``TEMPLATE_PHOTOS``,
each captured within ``TEMPLATE_SPAN_DAYS`` of the most recent), which the
ablation in docs/accuracy.md measured to find more of the watchlisted at the
same false-alert rate; the most recent suitable photo gives the thumbnail, the
source and the capture date (G4). Rows past those limits are reported as
``superseded``.
"""
from __future__ import annotations

import csv
import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.progress import Progress

from appliance.errors import InputError
from appliance.watchlist.payload import Entry, field_problem
from lfr_tools.backoffice.seal import Operation, seal_entries

COLUMNS = ("subject_ref", "image", "category", "image_source", "capture_date", "review_by")
_BAD = {"subject_ref": "bad_subject_ref", "category": "bad_category", "image_source": "bad_image_source",
        "capture_date": "bad_date", "review_by": "bad_date"}
TEMPLATE_PHOTOS = 3
TEMPLATE_SPAN_DAYS = 5 * 365


@dataclass(frozen=True)
class Reject:
    """One CSV row that did not make it into the bundle, and why."""

    row: int
    subject_ref: str
    image: str
    reason: str


@dataclass
class BuildReport:
    """What a build did: accepted subjects, rows enrolled into their templates, per-row rejects,
    and the bundle's hash and size (every row is either in a template or rejected)."""

    rows: int
    accepted: int
    rejects: list[Reject] = field(default_factory=list)
    template_rows: int = 0
    bundle_sha256: str = ""
    bundle_bytes: int = 0

    def by_reason(self) -> dict[str, int]:
        """Reject counts per reason, most common first."""
        return dict(Counter(r.reason for r in self.rejects).most_common())

    def to_json(self) -> dict:
        """The report as JSON-serialisable data (for --report; back office only)."""
        return {"rows": self.rows, "accepted": self.accepted, "template_rows": self.template_rows,
                "rejected": len(self.rejects),
                "by_reason": self.by_reason(), "bundle_sha256": self.bundle_sha256,
                "bundle_bytes": self.bundle_bytes, "rejects": [asdict(r) for r in self.rejects]}


def read_rows(csv_path: Path) -> list[dict]:
    """Read the entries CSV; each row gets its 2-based line number as ``row``."""
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{csv_path}: missing column(s) {', '.join(missing)}",
                                 fix=f"the header row must name: {', '.join(COLUMNS)}")
            return [{**{k: (v or "").strip() for k, v in row.items() if k}, "row": n}
                    for n, row in enumerate(reader, start=2)]
    except OSError as exc:
        raise InputError(f"cannot read {csv_path}: {exc.strerror}", fix="pass an existing CSV file") from None


def _date(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def row_problem(row: dict, today: date) -> str | None:
    """Why a row cannot be used before any image is read (G4), or None."""
    for name in COLUMNS:
        if not row.get(name):
            return f"missing:{name}"
    bad = field_problem(row)  # the unit's own rules for identifiers, text and dates
    if bad:
        return _BAD[bad[0]]
    captured, review = _date(row["capture_date"]), _date(row["review_by"])
    if captured > today:
        return "capture_date_in_future"
    if review < today:
        return "review_overdue"
    return None


def _candidates(rows: list[dict], today: date) -> tuple[dict[str, list[dict]], list[Reject]]:
    """Usable rows grouped by subject, most recent capture first; plus the rows refused outright."""
    groups: dict[str, list[dict]] = defaultdict(list)
    rejects = []
    for row in rows:
        problem = row_problem(row, today)
        if problem:
            rejects.append(Reject(row["row"], row.get("subject_ref", ""), row.get("image", ""), problem))
        else:
            groups[row["subject_ref"]].append(row)
    for group in groups.values():
        group.sort(key=lambda r: r["capture_date"], reverse=True)
    return groups, rejects


def _enrol_all(engines: list, images_dir: Path, row: dict):
    """Enrol one row's image with every model; return ({model id: Enrolment}, None) or (None, reason).

    The image must enrol with each model (its own detector and quality gate): a vector
    missing for the model a unit runs would leave that subject unmatched there."""
    enrolled = {}
    for n, engine in enumerate(engines):
        enrolment, reason = _enrol_row(engine, images_dir, row)
        if enrolment is None:
            return None, reason if n == 0 else f"{reason}@{engine.model_id}"
        enrolled[engine.model_id] = enrolment
    return enrolled, None


def _enrol_row(engine, images_dir: Path, row: dict):
    """Enrol one row's image; return (Enrolment, None) or (None, reason)."""
    from appliance import imagefile  # noqa: PLC0415 (loads OpenCV)
    from appliance.vision.engine import EnrolmentReject  # noqa: PLC0415 (loads the vision stack)

    path = images_dir / row["image"]
    if not path.is_file():
        return None, "image_missing"
    try:
        image = imagefile.read_file(path)
    except imagefile.ImageRefused:
        return None, "image_unreadable"
    try:
        return engine.enrol_image(image), None
    except EnrolmentReject as exc:
        return None, exc.reason


def _in_template(newest: dict | None, used: int, row: dict) -> bool:
    """Whether a suitable row (newest first) joins the subject's template."""
    if newest is None:
        return True
    span = (date.fromisoformat(newest["capture_date"]) - date.fromisoformat(row["capture_date"])).days
    return used < TEMPLATE_PHOTOS and span <= TEMPLATE_SPAN_DAYS


def _template_entry(ref: str, group: list[dict], images_dir: Path, engines: list, rejects: list[Reject],
                    advance) -> Entry | None:
    """One subject's entry: per model, the mean of its most recent suitable photos; metadata and
    thumbnail of the newest."""
    newest, thumbnail, used = None, b"", []
    for row in group:
        if not _in_template(newest, len(used), row):
            rejects.append(Reject(row["row"], ref, row["image"], "superseded"))
            advance()
            continue
        enrolled, reason = _enrol_all(engines, images_dir, row)
        advance()
        if enrolled is None:
            rejects.append(Reject(row["row"], ref, row["image"], reason))
            continue
        if newest is None:
            newest, thumbnail = row, enrolled[engines[0].model_id].thumbnail_jpeg
        used.append(enrolled)
    if newest is None:
        return None
    return Entry(ref, newest["category"], newest["image_source"], newest["capture_date"], newest["review_by"],
                 {e.model_id: _mean([u[e.model_id].embedding for u in used]) for e in engines}, thumbnail)


def _mean(vectors: list[np.ndarray]) -> np.ndarray:
    """The L2-normalised mean of a subject's vectors of one model (its template)."""
    mean = np.mean(vectors, axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def enrol_rows(rows: list[dict], images_dir: Path, engine, today: date,
               show_progress: bool = True) -> tuple[list[Entry], list[Reject]]:
    """Enrol every subject from its most recent suitable photos; return entries and rejects.

    ``engine`` is one engine or a list of them, one per embedding model the bundle carries
    (the first also gives the reference thumbnail)."""
    engines = engine if isinstance(engine, list) else [engine]
    groups, rejects = _candidates(rows, today)
    entries = []
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("enrolling", total=sum(len(g) for g in groups.values()))
        for ref, group in groups.items():
            entry = _template_entry(ref, group, images_dir, engines, rejects, lambda: progress.advance(task))
            if entry is not None:
                entries.append(entry)
    rejects.sort(key=lambda r: r.row)
    return entries, rejects


def write_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and rename (the bundle is ciphertext only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def build_bundle(csv_path: Path, images_dir: Path, operation: Operation, engine, authority: Ed25519PrivateKey,
                 out_path: Path, today: date | None = None, show_progress: bool = True) -> BuildReport:
    """Enrol the CSV's entries with ``engine`` (or each of a list of engines, one per model the
    bundle carries), seal them for ``operation`` and write ``out_path``."""
    rows = read_rows(Path(csv_path))
    entries, rejects = enrol_rows(rows, Path(images_dir), engine, today or date.today(), show_progress)
    report = BuildReport(rows=len(rows), accepted=len(entries), rejects=rejects,
                         template_rows=len(rows) - len(rejects))
    if not entries:
        raise InputError(f"no entry could be enrolled ({report.by_reason()})",
                         fix="check the CSV and images; see the per-row reasons with --report")
    data = seal_entries(operation, entries, authority)
    write_file(Path(out_path), data)
    report.bundle_sha256, report.bundle_bytes = hashlib.sha256(data).hexdigest(), len(data)
    return report
