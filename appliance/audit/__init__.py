"""Tamper-evident, signed audit log (see docs/audit.md).

Kept empty on purpose: the offline verifier imports appliance.audit.verify on a
laptop with Python and `cryptography` only, so this package must import nothing.
"""
