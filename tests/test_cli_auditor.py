"""`appliance audit verify` through the one entry point still needs only Python and cryptography."""
from __future__ import annotations

import json
import subprocess
import sys

from cryptography.hazmat.primitives import serialization

from tests.audit_helpers import IMPORT_BLOCKER, exported, new_key
from tests.test_audit_verify_imports import FORBIDDEN

CHILD = IMPORT_BLOCKER + r"""
from appliance.cli import main
rc = main(["audit", "verify", sys.argv[2], "--unit-key", sys.argv[3]])
top = sorted({m.split(".")[0] for m in set(sys.modules) - BEFORE} - set(sys.stdlib_module_names))
print(json.dumps({"rc": rc, "third_party": top}))
"""


def test_cli_audit_verify_imports_no_model_or_config_stack(tmp_path):
    key = new_key()
    export = exported(tmp_path, key, n=20)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    proc = subprocess.run([sys.executable, "-c", CHILD, ",".join(FORBIDDEN), str(export), raw],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["rc"] == 0
    assert not set(result["third_party"]) & set(FORBIDDEN), result
