"""`watchlist build` from lfw-dev identities with the unit's engine: per-row rejects by reason (G4)."""
from __future__ import annotations

import csv
import json
from datetime import date

import cv2
import numpy as np
import pytest

from lfr_tools.backoffice.authority import load_authority
from appliance.errors import InputError
from lfr_tools.backoffice.build import build_bundle, read_rows, row_problem
from lfr_tools.backoffice.seal import Operation

from watchlist_helpers import make_unit, window

TODAY = date(2026, 11, 28)
FIELDS = ["subject_ref", "image", "category", "image_source", "capture_date", "review_by"]


def write_csv(path, rows):
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, FIELDS)
        writer.writeheader()
        writer.writerows(rows)


OLD_PHOTO = "2012-01-01"  # more than TEMPLATE_SPAN_DAYS before the newest: left out of the template


def lfw_rows(lfw, identities: int) -> list[dict]:
    """Two recent rows per identity (older and newer photo), forming the template with the newest
    one's metadata, and a third, much older one where the identity has it (superseded)."""
    rows = []
    folders = [f for f in sorted(lfw.iterdir()) if len(list(f.glob("*.jpg"))) >= 2][:identities]
    for i, folder in enumerate(folders):
        photos = sorted(folder.glob("*.jpg"))[:3]
        for image, taken in zip(photos, ("2025-06-01", "2026-02-01", OLD_PHOTO)):
            rows.append({"subject_ref": f"LFW-{i:03d}", "image": f"{folder.name}/{image.name}",
                         "category": "wanted:test", "image_source": "custody:LFW-dev",
                         "capture_date": taken, "review_by": "2027-06-01"})
    return rows


def bad_rows(template: dict) -> list[dict]:
    """Rows the G4 checks must refuse before any image is read."""
    return [{**template, "subject_ref": "BAD-1", "image_source": ""},
            {**template, "subject_ref": "BAD-2", "capture_date": ""},
            {**template, "subject_ref": "BAD-3", "category": ""},
            {**template, "subject_ref": "BAD-4", "capture_date": "2027-01-01"},
            {**template, "subject_ref": "BAD-5", "review_by": "2026-01-01"},
            {**template, "subject_ref": "BAD-6", "image": "Nobody/none.jpg"}]


def test_row_checks_name_the_missing_field():
    good = dict(zip(FIELDS, ["WL-1", "a.jpg", "wanted", "custody", "2026-01-01", "2027-01-01"]))
    assert row_problem(good, TODAY) is None
    assert row_problem({**good, "image_source": ""}, TODAY) == "missing:image_source"
    assert row_problem({**good, "capture_date": "01/02/2026"}, TODAY) == "bad_date"
    assert row_problem({**good, "subject_ref": "has space"}, TODAY) == "bad_subject_ref"


def test_csv_without_a_required_column_is_refused(tmp_path):
    path = tmp_path / "e.csv"
    path.write_text("subject_ref,image\nWL-1,a.jpg\n")
    with pytest.raises(InputError, match="missing column"):
        read_rows(path)


@pytest.mark.dataset
def test_build_from_lfw_identities(engine, lfw, tmp_path):
    unit = make_unit(tmp_path)
    rows = lfw_rows(lfw, 40)
    rows += bad_rows(rows[0])
    write_csv(tmp_path / "entries.csv", rows)
    start, end = window()
    operation = Operation("OP-LFW-1", "Supt-4521", start, end, unit.recipient)
    out = tmp_path / "lfw.lfrwl"
    report = build_bundle(tmp_path / "entries.csv", lfw, operation, engine, load_authority(unit.authority_dir),
                          out, today=TODAY, show_progress=False)
    reasons = report.by_reason()
    (tmp_path / "report.json").write_text(json.dumps(report.to_json(), indent=2))
    print(f"lfw-dev build: {report.rows} rows, {report.accepted} subjects enrolled, rejects by reason: {reasons}")

    assert report.rows == len(rows) == report.template_rows + len(report.rejects)
    assert report.accepted < report.template_rows <= 2 * report.accepted, "templates of two recent photos"
    for reason in ("missing:image_source", "missing:capture_date", "missing:category",
                   "capture_date_in_future", "review_overdue"):
        assert reasons.get(reason) == 1, reason
    assert reasons.get("image_missing") == 1
    assert report.accepted >= 30, "most LFW identities enrol"
    old_rows = sum(r["capture_date"] == OLD_PHOTO for r in rows)
    assert reasons.get("superseded", 0) >= old_rows - 3, "photos years older than the newest stay out"
    engine_reasons = {r for r in reasons if r in ("no_face", "several_faces") or r.startswith("low_quality:")}
    assert sum(reasons.get(r, 0) for r in engine_reasons) + reasons.get("superseded", 0) \
        + 6 == len(report.rejects)

    dep = unit.deployment()
    dep.start(out, "Test Yard")
    watchlist = dep.current_watchlist()
    assert len(watchlist) == report.accepted and not any(r.startswith("BAD-") for r in watchlist.subject_refs)
    rejected = {(r.subject_ref, r.image) for r in report.rejects}
    ref = next(r["subject_ref"] for r in rows if r["capture_date"] == OLD_PHOTO
               and not any(x["subject_ref"] == r["subject_ref"] and (x["subject_ref"], x["image"]) in rejected
                           and x["capture_date"] != OLD_PHOTO for x in rows))
    recent = [r for r in rows if r["subject_ref"] == ref and r["capture_date"] != OLD_PHOTO]
    vectors = [engine.enrol_image(cv2.imread(str(lfw / r["image"]))).embedding for r in recent]
    mean = np.mean(vectors, axis=0)
    row = watchlist.subject_refs.index(ref)
    assert np.allclose(watchlist.matrix[row], mean / np.linalg.norm(mean), atol=1e-5), \
        "the entry is the mean template of the two recent photos, not the old one"
    entry = watchlist.entries[row]
    assert (entry["image_source"], entry["capture_date"]) == ("custody:LFW-dev", "2026-02-01")
    assert bytes(entry["thumbnail"][:2]) == b"\xff\xd8", "a JPEG reference thumbnail travels with the entry"
