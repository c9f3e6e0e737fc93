"""Passwords and key passphrases at rest: encrypted with Fernet, never stored in plain text.

The key comes from FLEETTOP_SECRET_KEY when set (a Fernet key: 32 url-safe
base64-encoded bytes), else from data_dir/secret.key, created with mode 0600
on first use.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from fleettop.errors import FleettopError

KEY_ENV = "FLEETTOP_SECRET_KEY"
KEY_FILE_NAME = "secret.key"


class SecretBox:
    def __init__(self, data_dir: Path):
        self.key_path = Path(data_dir) / KEY_FILE_NAME
        self._fernet: Fernet | None = None
        self._key = b""

    def encrypt(self, plain: str) -> bytes:
        return self._cipher().encrypt(plain.encode("utf-8"))

    def decrypt(self, token: bytes) -> str:
        try:
            return self._cipher().decrypt(token).decode("utf-8")
        except InvalidToken:
            raise FleettopError(
                f"a stored password cannot be decrypted: the secret key ({self._key_source()}) is not the one it was stored with"
            ) from None

    def relay_key(self) -> bytes:
        """The key that authenticates audit entries relayed through Redis: derived from the
        secret key (HMAC with a label of its own), so it reveals nothing of it."""
        self._cipher()
        return hmac.new(self._key, b"fleettop audit relay v1", hashlib.sha256).digest()

    def _key_source(self) -> str:
        return f"${KEY_ENV}" if os.environ.get(KEY_ENV) else str(self.key_path)

    def _cipher(self) -> Fernet:
        # The key is read once; a few hundred bytes, so reading it on the event loop is harmless.
        if self._fernet is None:
            from_env = os.environ.get(KEY_ENV)
            key = from_env.encode() if from_env else self._file_key()
            try:
                self._fernet = Fernet(key)
                self._key = key
            except ValueError:
                raise FleettopError(f"{self._key_source()} is not a valid secret key (a Fernet key is expected)") from None
        return self._fernet

    def _file_key(self) -> bytes:
        path = self.key_path
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Written aside, then linked into place: link() fails when another process won the
            # race, so every process ends up with the one key, never a half-written file.
            draft = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            raise FleettopError(f"{path} is readable by other users (mode {mode:04o}): chmod 600 it")
        return path.read_bytes().strip()
