"""A screening's short code: six characters a person reads out at the front desk after the
kiosk's screen has reset, and staff type into the dashboard to find the screening.

Derived from the screening's id (no column of its own): the first 64 bits of the id's SHA-256
in base 25, over letters and digits that are not mistaken for one another when read or heard
(no 0/O/Q, 1/I/L, 2/Z, 5/S, 6/G, 8/B, U/V). 25**6 is 244 million codes: among 10,000
screenings kept, two share a code with a chance of about 1 in 5, and staff tell them apart by
the time (the dashboard lists every match).
"""

from __future__ import annotations

import hashlib

ALPHABET = "23456789ACDEFHJKMNPRTVWXY"
LENGTH = 6


def screening_code(screening_id: str) -> str:
    """The code shown on the result card for the screening `screening_id` (e.g. "KM47XR")."""
    n = int.from_bytes(hashlib.sha256(screening_id.encode()).digest()[:8], "big")
    chars = []
    for _ in range(LENGTH):
        n, d = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[d])
    return "".join(chars)


def normalise(typed: str) -> str:
    """A code as staff type it (any case, spaces or dashes between groups) -> its canonical form."""
    return "".join(c for c in typed.upper() if not c.isspace() and c != "-")
