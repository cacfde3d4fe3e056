"""Queues and agents from a YAML file (``callcenter acd load``): checked whole before anything is
written, upserted by queue key and agent e-mail, audited.

The file::

    queues:
      - key: general
        service: general
        name: {ar: الاستفسارات العامة, en: General inquiries}
        steps: [[0, 1], [30, 2], [90, 3]]     # widen to less skilled agents as the wait grows
        max_wait: 600
        callback_after: 60
        sl_threshold_s: 20
    agents:
      - email: agent1@ministry.ly              # an existing staff account with the agent role
        endpoint: PJSIP/101                    # the phone that rings (dialplans/pjsip.conf)
        skills: [[service, general, 1], [language, ar, 1]]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from callcenter import models
from callcenter.audit import audit
from callcenter.errors import CallCenterError
from callcenter.routing.config import QueueSettings, queue_settings, skills_from_list, skills_to_list
from callcenter.routing.model import RoutingConfigError

_ENDPOINT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./@:")


class AcdFileError(CallCenterError):
    error_id = "acd_file"


@dataclass(frozen=True, slots=True)
class AgentLine:
    email: str
    endpoint: str
    skills: list[list[Any]]


@dataclass(frozen=True, slots=True)
class Loaded:
    queues: int
    agents: int


def parse(text: str) -> tuple[list[QueueSettings], list[AgentLine]]:
    """The file's queues and agents, or ``AcdFileError`` naming the first bad item."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise AcdFileError(f"not YAML: {exc}") from exc
    if not isinstance(data, dict) or set(data) - {"queues", "agents"}:
        raise AcdFileError("the file has two lists: queues and agents")
    queues: list[QueueSettings] = []
    for n, item in enumerate(data.get("queues") or [], 1):
        if not isinstance(item, dict) or not item.get("key") or not item.get("service"):
            raise AcdFileError(f"queue {n}: a key and a service are needed")
        item = dict(item)
        key, service = str(item.pop("key")), str(item.pop("service"))
        name = item.pop("name", None) or {}
        municipality, language = item.pop("municipality", None), item.pop("language", None)
        try:
            queues.append(
                queue_settings(
                    key, service=service, municipality=municipality, language=language, config=item,
                    name_ar=str(name.get("ar", "")), name_en=str(name.get("en", "")),
                )
            )  # fmt: skip
        except RoutingConfigError as exc:
            raise AcdFileError(f"queue {n} ({key}): {exc}") from exc
    if len({q.queue.id for q in queues}) != len(queues):
        raise AcdFileError("two queues have the same key")
    agents: list[AgentLine] = []
    for n, item in enumerate(data.get("agents") or [], 1):
        if not isinstance(item, dict) or not item.get("email") or not item.get("endpoint"):
            raise AcdFileError(f"agent {n}: an email and an endpoint are needed")
        endpoint = str(item["endpoint"])
        if not endpoint.startswith(("PJSIP/", "SIP/", "Local/")) or not set(endpoint) <= _ENDPOINT_CHARS:
            raise AcdFileError(f"agent {n}: the endpoint is a dial string such as PJSIP/101")
        try:
            agent_skills = skills_to_list(skills_from_list(item.get("skills") or []))
        except (RoutingConfigError, ValueError, TypeError) as exc:
            raise AcdFileError(f"agent {n}: {exc}") from exc
        agents.append(AgentLine(str(item["email"]).strip().casefold(), endpoint, agent_skills))
    return queues, agents


async def load(engine: AsyncEngine, text: str, *, actor: str) -> Loaded:
    """Upsert the file's queues (by key) and agents (by e-mail); unknown e-mails are refused."""
    queues, agents = parse(text)
    q = models.table(models.ServiceQueue)
    a = models.table(models.AgentProfile)
    u = models.table(models.User)
    async with AsyncSession(engine) as session, session.begin():
        conn = await session.connection()
        emails = {line.email for line in agents}
        lower = func.lower(u.c.email)
        found = await conn.execute(select(lower, u.c.id).where(lower.in_(emails)))
        users: dict[str, int] = {email: user_id for email, user_id in found}
        unknown = sorted(emails - users.keys())
        if unknown:
            raise AcdFileError(f"no staff account for {', '.join(unknown)}: create them first")
        for s in queues:
            values: dict[str, Any] = {
                "service": s.queue.service, "municipality": s.queue.municipality,
                "language": s.queue.language, "name_ar": s.name_ar, "name_en": s.name_en,
                "config": s.to_config(), "active": True,
            }  # fmt: skip
            done = await conn.execute(update(q).where(q.c.key == s.queue.id).values(**values))
            if not done.rowcount:
                await conn.execute(insert(q).values(key=s.queue.id, created_at=models.utcnow(), **values))
        for line in agents:
            profile = {"endpoint": line.endpoint, "skills": line.skills, "active": True}
            user_id = users[line.email]
            done = await conn.execute(update(a).where(a.c.user_id == user_id).values(**profile))
            if not done.rowcount:
                await conn.execute(insert(a).values(user_id=user_id, created_at=models.utcnow(), **profile))
        audit(
            session, actor=actor, action="acd.load", target="acd",
            after={"queues": [s.queue.id for s in queues], "agents": sorted(emails)},
        )  # fmt: skip
    return Loaded(len(queues), len(agents))
