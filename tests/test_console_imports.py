"""The console is its own trust domain: it never imports the unit's watchlist, key store, audit,
capture, vision or pipeline code. Checked on the source (every import the console's modules
reach, followed through the appliance package) and by importing the app in a fresh interpreter."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("appliance.watchlist", "appliance.keystore", "appliance.audit", "appliance.capture",
             "appliance.vision", "appliance.pipeline")
ENTRY = ["appliance.console.app", "appliance.console.server", "appliance.commands.console"]


def module_file(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imports_of(name: str) -> set[str]:
    """The appliance modules one module imports (absolute, relative, and package parents)."""
    path = module_file(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(f"{base}.{a.name}")}
    parents = {".".join(m.split(".")[:i]) for m in found for i in range(1, m.count(".") + 1)}
    return {m for m in found | parents if m.startswith("appliance") and module_file(m)}


def reachable(entries: list[str]) -> set[str]:
    seen, todo = set(), list(entries)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += imports_of(name)
    return seen


def test_console_source_imports_none_of_the_units_secrets():
    reached = reachable(ENTRY + [f"appliance.console.{p.stem}" for p in (ROOT / "appliance/console").glob("*.py")])
    bad = sorted(m for m in reached if m.startswith(FORBIDDEN))
    assert "appliance.mqtt.payload" in reached and "appliance.keyid" in reached  # the walk does follow imports
    assert bad == [], f"the console reaches {bad}"


def test_importing_the_console_loads_none_of_them():
    code = ("import json, sys\n"
            "import appliance.console.app, appliance.console.server, appliance.commands.console\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('appliance'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout)
    assert "appliance.console.app" in loaded
    assert [m for m in loaded if m.startswith(FORBIDDEN)] == []


def test_the_walk_would_notice_a_forbidden_import(tmp_path):
    assert any(m.startswith("appliance.keystore") for m in reachable(["appliance.commands.keys"]))
