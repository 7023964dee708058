"""What makes a secret key real: random keys always are, made-up ones never.

The messages a refused key gets are config's: tests/test_config.py."""

import secrets

import pytest

from flaskr.secret_key import is_real


@pytest.mark.parametrize(
    ("make", "keys"),
    [
        # The sequence rule refuses about 1 token_hex(16) key in 65,000 (32 characters, 31
        # neighbouring pairs, each equal or one apart with 0.17): 200 of them, as before.
        (lambda: secrets.token_hex(16), 200),
        (lambda: secrets.token_hex(32), 3000),
        (lambda: secrets.token_urlsafe(32), 3000),
    ],
)
def test_random_keys_pass_the_check_every_time(make, keys) -> None:
    """The placeholder words refuse about 1 token_urlsafe(32) key in 4 million and no
    token_hex key (the figures: is_real); 2,000,000 and 1,000,000 ran once."""
    for _ in range(keys):
        assert is_real(make())


def test_a_few_separators_or_any_bytes_pass_but_mostly_separators_do_not() -> None:
    for key in (
        "k-9f86d081884c7d65a2f0e3b1c4d7e6f8",
        "550e8400-e29b-41d4-a716-446655440000",  # a UUID: 4 separators in 36
        b'_5#y2L"F4Q8z\n\xec]/' * 3,  # the Flask tutorial's bytes, read as Latin-1
        "correct horse battery staple tower lamp",  # a passphrase of common words
    ):
        assert is_real(key)
    assert not is_real("k-q-z-b-m-w-c-r-j-x-f-d-h-p-y-g-t")  # a third or more separators
