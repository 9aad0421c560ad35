"""Watchlists: signed, encrypted, bespoke to one deployment, and gone when it ends.

- ``manifest``: the signed manifest (canonical JSON);
- ``container``: the bundle file format and its size bound;
- ``payload``: entries, embeddings and thumbnails, serialised without pickle;
- ``crypto``: age encryption (pyrage) and the Ed25519 manifest signature;
- the back office side (enrol, encrypt, sign) is ``lfr_tools.backoffice`` (not on a unit);
- ``verify``: the unit side checks, then decryption into memory only;
- ``records`` and ``deployment``: the deployment lifecycle, expiry and purge.

The format and the lifecycle are documented in docs/watchlist.md.
"""
