"""The officers' van console: a tablet web app over HTTPS, an MQTT client of the van broker.

One trust domain of its own: it reads unit payloads from MQTT (verified against pinned unit
keys), signs officers' adjudications with its own key, and never imports the unit's
watchlist, key store, audit, capture, vision or pipeline code (tests/test_console_imports.py).
See docs/console.md.
"""
