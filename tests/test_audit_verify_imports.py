"""The offline verifier needs Python and `cryptography` only.

Run in a fresh interpreter with an import hook that makes the appliance's heavy
dependencies unimportable, from a folder holding only the verifier's own files
(what an auditor would be handed), and check what ended up in sys.modules.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.audit_helpers import IMPORT_BLOCKER, exported, new_key

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN = ["numpy", "cv2", "onnxruntime", "ai_edge_litert", "litert", "tflite_runtime", "pydantic",
             "sqlite_utils", "sqlite3", "paho", "pyrage", "jsonschema", "rich"]
VERIFIER_FILES = ["appliance/__init__.py", "appliance/audit/__init__.py", "appliance/audit/verify.py",
                  "appliance/audit/verify_checks.py", "appliance/audit/merkle.py",
                  "appliance/audit/events.py", "appliance/audit/heads.py", "appliance/audit/export_format.py"]

CHILD = IMPORT_BLOCKER + r"""
sys.path.insert(0, sys.argv[2])
from appliance.audit.verify import main
rc = main([sys.argv[3], "--unit-key", sys.argv[4]])
top = sorted({m.split(".")[0] for m in set(sys.modules) - BEFORE} - set(sys.stdlib_module_names))
import appliance
print(json.dumps({"rc": rc, "third_party": top, "appliance_from": appliance.__file__}))
"""


def test_verify_imports_only_stdlib_and_cryptography(tmp_path):
    key = new_key()
    export = exported(tmp_path, key, n=30)
    bundle = tmp_path / "auditor"
    for rel in VERIFIER_FILES:
        (bundle / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / rel, bundle / rel)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    proc = subprocess.run([sys.executable, "-c", CHILD, ",".join(FORBIDDEN), str(bundle), str(export), raw],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0, proc.stdout
    assert result["appliance_from"].startswith(str(bundle)), "must run from the auditor's copy alone"
    # cryptography's own compiled bindings are the only other modules loaded
    assert set(result["third_party"]) <= {"appliance", "cryptography", "_cffi_backend", "_openssl"}, result
    assert not set(result["third_party"]) & set(FORBIDDEN)


def test_appliance_package_init_stays_tiny():
    for rel in ("appliance/__init__.py", "appliance/audit/__init__.py"):
        lines = (REPO / rel).read_text().splitlines()
        imports = [ln for ln in lines if re.match(r"\s*(import|from)\s", ln)]
        assert imports == [], f"{rel} must import nothing: {imports}"
