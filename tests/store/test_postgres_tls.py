"""libpq's sslmode, as the TLS context handed to asyncpg (security review finding 10)."""

from __future__ import annotations

import ssl

import pytest
from sqlalchemy.engine import make_url

from fleettop.store.db import _asyncpg_tls

CA = "/etc/ssl/certs/ca-certificates.crt"


def _context(query: str) -> ssl.SSLContext | bool | str:
    parsed, connect_args = _asyncpg_tls(make_url(f"postgresql+asyncpg://u@db.example/x?{query}"))
    assert not {"sslmode", "sslrootcert"} & set(parsed.query)  # asyncpg would refuse them
    return connect_args["ssl"]


@pytest.mark.parametrize(
    ("query", "verify_mode", "check_hostname"),
    [
        # libpq: "if a root CA file exists, sslmode=require behaves like verify-ca"
        (f"sslmode=require&sslrootcert={CA}", ssl.CERT_REQUIRED, False),
        (f"sslmode=verify-ca&sslrootcert={CA}", ssl.CERT_REQUIRED, False),
        (f"sslmode=verify-full&sslrootcert={CA}", ssl.CERT_REQUIRED, True),
        (f"sslrootcert={CA}", ssl.CERT_REQUIRED, True),  # files without a mode: the strictest
        (f"sslmode=prefer&sslrootcert={CA}", ssl.CERT_NONE, False),
        (f"sslmode=allow&sslrootcert={CA}", ssl.CERT_NONE, False),
    ],
)
def test_sslmode_with_a_root_certificate_follows_libpq(query, verify_mode, check_hostname):
    context = _context(query)
    assert isinstance(context, ssl.SSLContext)
    assert (context.verify_mode, context.check_hostname) == (verify_mode, check_hostname)


def test_a_mode_without_files_goes_to_asyncpg_as_is():
    assert _context("sslmode=verify-full") == "verify-full"
    assert _context(f"sslmode=disable&sslrootcert={CA}") is False
