"""Bearer tokens of the HTTP API: which named token a request carries, compared in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping


class Tokens:
    """The API's tokens by name. `holder(header)` is the name of the token an Authorization
    header carries, or None. Every token is compared, whatever matched first, each with
    hmac.compare_digest: the time taken says nothing of which token, or how much of one, matched."""

    def __init__(self, tokens: Mapping[str, str]):
        self._tokens = [(name, token.encode()) for name, token in tokens.items()]

    def __bool__(self) -> bool:
        return bool(self._tokens)

    def holder(self, authorization: str | None) -> str | None:
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        offered = credentials.strip().encode()
        found = None
        for name, token in self._tokens:
            if hmac.compare_digest(offered, token) and found is None:
                found = name
        return found
