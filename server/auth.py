"""Bearer-token authentication: a request must carry ``Authorization: Bearer <token>``.

The token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from pathlib import Path

from .errors import ConfigError, Unauthenticated


class TokenCheck:
    """Checks the Authorization value of a request against the configured token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    @classmethod
    def from_file(cls, path: Path) -> TokenCheck:
        try:
            token = path.read_text().strip()
        except OSError as error:
            raise ConfigError(f"{path}: cannot read the auth token: {error.strerror}") from None
        if not token:
            raise ConfigError(f"{path}: the auth token file is empty")
        return cls(token)

    def check(self, authorization: str | None) -> None:
        """Raise Unauthenticated unless ``authorization`` is the expected bearer token."""
        if authorization is None:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <token>)")
        if not hmac.compare_digest(authorization.encode(), self._expected):
            raise Unauthenticated("wrong bearer token")
