"""Who a token acts for, and what it may do: the Hub's namespace permission model.

Token config, one entry per line or comma-separated: `TOKEN=USER:ROLE` or `TOKEN=USER:ROLE:ORG1+ORG2`, where ROLE is
`read`, `write` or `admin` (write plus the devhub's own fault-injection and request-log routes). A token writes only in
its user's namespace and the listed organisations, and reads private repos only there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Mapping

Role = Literal["read", "write", "admin"]
ROLES = ("read", "write", "admin")


@dataclass(frozen=True)
class TokenGrant:
    """What one token may do."""

    user: str
    role: Role
    orgs: tuple[str, ...] = ()

    @property
    def can_write(self) -> bool:
        return self.role in ("write", "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def member_of(self, namespace: str) -> bool:
        return namespace == self.user or namespace in self.orgs


class TokenConfigError(ValueError):
    """A token entry that does not follow `TOKEN=USER:ROLE[:ORG+ORG]`."""


def parse_tokens(spec: str) -> dict[str, TokenGrant]:
    """'tokA=alice:write:acme+labs,tokB=bob:read' -> {token: TokenGrant}; lines starting with # are ignored."""
    tokens = {}
    for line in spec.splitlines():
        if line.strip().startswith("#"):
            continue
        for item in filter(None, (part.strip() for part in line.split(","))):
            token, _, rest = item.partition("=")
            user, _, rest = rest.partition(":")
            role, _, orgs = rest.partition(":")
            if not token or not user or role not in ROLES:
                raise TokenConfigError(f"bad token entry for user {user or '?'!r}: expected TOKEN=USER:ROLE[:ORG+ORG] "
                                       f"with ROLE one of {', '.join(ROLES)}")
            tokens[token] = TokenGrant(user, role, tuple(filter(None, orgs.split("+"))))
    return tokens


def load_tokens(tokens_file: Path | None = None, spec: str | None = None) -> dict[str, TokenGrant]:
    """Tokens from a file (best: not in the process list), else `spec`, else $DEVHUB_TOKENS."""
    if tokens_file is not None:
        return parse_tokens(Path(tokens_file).read_text())
    spec = spec or os.environ.get("DEVHUB_TOKENS", "")
    tokens = parse_tokens(spec)
    if not tokens:
        raise TokenConfigError("no tokens: pass --tokens-file or set DEVHUB_TOKENS")
    return tokens


def as_grants(tokens: Mapping[str, TokenGrant | tuple]) -> dict[str, TokenGrant]:
    """Accept `(user, role)` or `(user, role, orgs)` tuples too, as older callers pass them."""
    grants = {}
    for token, grant in tokens.items():
        if not isinstance(grant, TokenGrant):
            user, role, *orgs = grant
            grant = TokenGrant(user, role, tuple(orgs[0]) if orgs else ())
        if grant.role not in ROLES:
            raise TokenConfigError(f"role of {grant.user!r} must be one of {', '.join(ROLES)}")
        grants[token] = grant
    return grants
