"""What makes a secret key real, and where systemd hands one over.

config.py refuses to serve without a real key (sessions signed with a known or guessable
one could be forged); the rules and what they cost random keys are here.
"""

from __future__ import annotations

import os
from typing import Any

#: Secret keys that are known to the world and so are no secret at all.
INSECURE_KEYS = {"", "dev", "secret", "changeme", "change-me"}

KEY_LENGTH = 32
KEY_VARIETY = 8
#: Words of placeholders and made-up keys (CHANGE_ME_TO_A_RANDOM_SECRET_KEY,
#: my-super-secret-key-for-flaskr-2026): a key holding one, in any case, is refused.
#: See is_real for what that costs random keys.
PLACEHOLDER_WORDS = (
    "change", "secret", "passwd", "sample", "random", "flaskr",
    "example", "replace", "default",
    "generate", "password", "insecure",
    "placeholder",
)  # fmt: skip
#: What separates the words or letters of a made-up key (" a b c d", "my-key-for-this").
SEPARATORS = frozenset(" \t\n-_.,:;/|")


def is_real(key: Any) -> bool:
    """Tell a real key from a missing, well-known or guessable one.

    A real key has at least KEY_LENGTH characters, KEY_VARIETY of them different, and is not
    a run or a sequence (``aaaa...``, ``0123456789abcdef...``, ``abcdefghij123456...``, also
    once its separators are left out: `` a b c d ...``): no more than half of its
    neighbouring characters are equal or one apart. Nor is it mostly one character (half of
    it or more) or separators (a third or more), nor does it hold a placeholder's word
    (PLACEHOLDER_WORDS: ``CHANGE_ME...``, ``...secret-key...``). ``secrets.token_hex(32)`` is
    a key.

    What the words cost random keys: none can occur in a token_hex key (each has a letter
    after f). In a token_urlsafe(32) key, 43 characters of 64 (1.3 of them ``-`` or ``_``,
    left out before the words are looked for), a letter matches a word's one in either case
    with 2/62 = 1/31: a 6-letter word lies at one of about 37 places with 37 / 31**6 = 4.1e-8,
    a 7-letter one with 1.3e-9. These 6 of 6 letters, 3 of 7 and 4 longer ones refuse at
    most 2.5e-7 of such keys, 1 in 4 million; a single 5-letter word would cost 1.3e-6.
    None of 2,000,000 token_urlsafe(32) and 1,000,000 token_hex(32) keys was refused. The
    other rules cost less: half of a token_hex(16) key one character, 2e-10; a third of a
    token_urlsafe(32) key separators, 2e-12.
    """
    if isinstance(key, bytes):
        key = key.decode("latin-1")
    return isinstance(key, str) and key.strip().lower() not in INSECURE_KEYS and not _guessable(key)


def _guessable(key: str) -> bool:
    """The key breaks one of is_real's rules."""
    if len(key.strip()) < KEY_LENGTH or len(set(key)) < KEY_VARIETY:
        return True
    bare = "".join(c for c in key if c not in SEPARATORS)
    most = max(key.count(c) for c in set(key))
    return (
        _mostly_a_sequence(key)
        or _mostly_a_sequence(bare)
        or 2 * most >= len(key)
        or 3 * (len(key) - len(bare)) >= len(key)
        or any(word in bare.lower() for word in PLACEHOLDER_WORDS)
    )


def _mostly_a_sequence(key: str) -> bool:
    """More than half of the neighbouring characters are equal or one apart.

    About 1 pair in 6 is in a random hex key.
    """
    steps = [abs(ord(b) - ord(a)) <= 1 for a, b in zip(key, key[1:], strict=False)]
    return sum(steps) * 2 > len(steps)


def credential_path() -> str | None:
    """The key systemd hands over with LoadCredential=secret_key, if it did."""
    directory = os.environ.get("CREDENTIALS_DIRECTORY")
    if directory and os.path.exists(os.path.join(directory, "secret_key")):
        return os.path.join(directory, "secret_key")
    return None
