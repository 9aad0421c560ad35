"""Tooling around the LFR appliance firmware, kept out of the unit's runtime package.

Benchmarks, accuracy evaluation, quantisation and model conversion, fetching weights
from the registries, the demo's clip composition, the test broker harness and the back
office (authority keys, watchlist bundle building). Installed beside ``appliance`` in a
development checkout (``make venv``); a van unit runs ``appliance`` alone. Its CLI
commands join the one ``appliance`` entry point through the ``appliance.commands``
entry-point group.
"""
