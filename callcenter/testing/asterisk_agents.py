"""A real Asterisk whose agent phones are SIPp user agents: the project's ``pjsip.conf`` with each
agent endpoint's contact where a SIPp UAS listens (where a phone that registered would be).

Endpoints the sample lacks (it has ``101`` and ``102``) are added as copies of its sections, as
an administrator adds an agent phone. Usage::

    phones = {str(101 + n): free_port(socket.SOCK_DGRAM) for n in range(10)}
    async with AgentPhones(tools, workdir, agi_port=server.port, phones=phones) as pbx:
        agent = await pbx.sipp_uas(UasBehaviour.HANGUP, port=phones["101"], calls=5)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from callcenter.testing.asterisk import AsteriskInstance


def agent_sections(endpoint: str) -> str:
    """The three ``pjsip.conf`` sections of one agent phone, from the sample's templates."""
    return (
        f"\n[{endpoint}](agent-phone)\nauth = {endpoint}\naors = {endpoint}\n"
        f"callerid = Agent {endpoint} <{endpoint}>\n"
        f"[{endpoint}](agent-aor)\n"
        f"[{endpoint}](agent-auth)\nusername = {endpoint}\npassword = change-me-{endpoint}\n"
    )


class AgentPhones(AsteriskInstance):
    """The project's dialplans with agent phones' contacts on SIPp UASes: ``phones`` maps the
    ``pjsip.conf`` endpoint (``101``) to a UDP port on 127.0.0.1."""

    def __init__(self, *args: Any, phones: Mapping[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phones = dict(phones)

    def write_conf(self) -> Path:
        conf = super().write_conf()
        pjsip = conf / "pjsip.conf"
        text = pjsip.read_text(encoding="utf-8")
        for endpoint, port in self.phones.items():
            header = f"[{endpoint}](agent-aor)"  # the aor takes its type from the template
            if header not in text:
                text += agent_sections(endpoint)
            text = text.replace(
                header, f"{header}\ncontact = sip:{endpoint}@127.0.0.1:{port}\nqualify_frequency = 0"
            )
        pjsip.write_text(text, encoding="utf-8")
        return conf
