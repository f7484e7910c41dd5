"""Bearer API tokens for machine clients, each acting as one user of the case store."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from payrecon.cases.service import CaseService
from payrecon.core.workflow import Actor, Role
from payrecon.errors import NotFoundError, PermissionDeniedError
from payrecon.web.models import ApiToken
from payrecon.web.security import new_api_token, token_digest


class TokenStore:
    """Issue, check and revoke API tokens (only their SHA-256 is stored)."""

    def __init__(self, service: CaseService) -> None:
        self.service = service

    def issue(self, user: str, label: str, *, by: Actor) -> tuple[int, str]:
        """A new token for ``user``: (id, the token, shown once)."""
        if by.name != user and by.role is not Role.ADMIN:
            raise PermissionDeniedError(f"{by.name} may not issue tokens for {user}")
        self.service.actor(user)
        token = new_api_token()
        with self.service.store.session() as session:
            row = ApiToken(
                token_hash=token_digest(token),
                user_name=user,
                label=label.strip() or "api",
                created_at=self.service.clock(),
                revoked=False,
            )
            session.add(row)
            session.flush()
            return row.id, token

    def actor(self, token: str) -> Actor | None:
        """The user a live token acts as (``None``: unknown or revoked token)."""
        with self.service.store.session() as session:
            row = session.execute(
                select(ApiToken).where(ApiToken.token_hash == token_digest(token))
            ).scalar_one_or_none()
            if row is None or row.revoked:
                return None
            name = row.user_name
        try:
            return self.service.actor(name)
        except NotFoundError:
            return None

    def revoke(self, token_id: int, *, by: Actor) -> None:
        with self.service.store.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None or (row.user_name != by.name and by.role is not Role.ADMIN):
                raise NotFoundError(f"no token {token_id}")
            row.revoked = True

    def listing(self, by: Actor) -> list[dict[str, Any]]:
        query = select(ApiToken).order_by(ApiToken.id)
        if by.role is not Role.ADMIN:
            query = query.where(ApiToken.user_name == by.name)
        with self.service.store.session() as session:
            return [
                {"id": t.id, "user": t.user_name, "label": t.label, "revoked": t.revoked}
                for t in session.execute(query).scalars()
            ]
