"""``N_`` marks a message id for the catalogues where it is defined, not where it is shown
(domain modules never import the web app's translation machinery)."""

from __future__ import annotations


def N_(message: str) -> str:
    return message
