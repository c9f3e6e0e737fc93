"""Passwords and key passphrases at rest: encrypted with Fernet, never stored in plain text.

The key comes from FLEETTOP_SECRET_KEY when set (a Fernet key: 32 url-safe
base64-encoded bytes), else from data_dir/secret.key, created with mode 0600
on first use.

Each secret is sealed together with the server it was entered for: its id, host,
port, user, transport and auth (an envelope inside the Fernet token, which
authenticates it). A token moved to another row, or a row whose host changed
under it, is refused before anything is sent: a stored password only ever goes
to the address it was typed for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from fleettop.domain import SECRET_BINDING
from fleettop.errors import FleettopError
from fleettop.private import open_own_file, private_dir

KEY_ENV = "FLEETTOP_SECRET_KEY"
KEY_FILE_NAME = "secret.key"
ENVELOPE_VERSION = 2  # 1 was the bare secret, bound to nothing


class SecretMismatch(FleettopError):
    """A stored secret that may not be used for this server: entered for another one, or unbound."""


class SecretBox:
    def __init__(self, data_dir: Path):
        self.key_path = Path(data_dir) / KEY_FILE_NAME
        self._fernet: Fernet | None = None
        self._key = b""

    def seal(self, plain: str, server_id: int, server: Any) -> bytes:
        """`plain` encrypted with the binding of `server` (a Server or ServerConfig) under `server_id`."""
        envelope = {"v": ENVELOPE_VERSION, "server_id": server_id, **_binding(server), "secret": plain}
        return self._cipher().encrypt(json.dumps(envelope).encode("utf-8"))

    def open(self, token: bytes, server_id: int, server: Any) -> str:
        """The secret sealed in `token`, if it was sealed for this server as it is now; else
        SecretMismatch (a secret entered for another host is never handed out)."""
        try:
            plain = self._cipher().decrypt(token)
        except InvalidToken:
            raise FleettopError(
                f"a stored password cannot be decrypted: the secret key ({self._key_source()}) is not the one it was stored with"
            ) from None
        try:
            envelope = json.loads(plain)
        except ValueError:
            envelope = None
        if not isinstance(envelope, dict) or envelope.get("v") != ENVELOPE_VERSION:
            # An older fleettop's token says nothing of its host: refused rather than trusted.
            raise SecretMismatch("stored password was saved without the host it belongs to; enter it again")
        if envelope.get("server_id") != server_id or {name: envelope.get(name) for name in SECRET_BINDING} != _binding(
            server
        ):
            raise SecretMismatch("stored password was entered for another host; enter it again")
        return envelope["secret"]

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
                raise FleettopError(
                    f"{self._key_source()} is not a valid secret key (a Fernet key is expected)"
                ) from None
        return self._fernet

    def _file_key(self) -> bytes:
        path = self.key_path
        private_dir(path.parent)
        if not path.exists():
            # Written aside, then linked into place: link() fails when another process won the
            # race, so every process ends up with the one key, never a half-written file.
            draft = path.with_name(f".{KEY_FILE_NAME}.{os.getpid()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(Fernet.generate_key() + b"\n")
            try:
                os.link(draft, path)
            except FileExistsError:
                pass
            finally:
                draft.unlink()
        with os.fdopen(open_own_file(path, os.O_RDONLY), "rb") as handle:  # the user's, never a link's target
            mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
            if mode & 0o077:
                raise FleettopError(f"{path} is readable by other users (mode {mode:04o}): chmod 600 it")
            return handle.read(1024).strip()


def _binding(server: Any) -> dict[str, Any]:
    return {name: getattr(server, name) for name in SECRET_BINDING}
