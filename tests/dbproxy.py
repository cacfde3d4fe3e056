"""A TCP proxy in front of PostgreSQL that a test can cut and restore: a database outage as
the engine meets it (connections reset mid-query, new connections refused, or taken and never
answered), without stopping the PostgreSQL every other test session on the machine shares.

Usage::

    async with DbProxy(5432) as proxy:
        url = proxy.url(pg_url)      # the same database, through the proxy
        await proxy.cut()            # every open connection reset, new ones refused
        await proxy.stall()          # ... or connections taken and never answered
        await proxy.restore()        # accepting again, on the same port
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from callcenter.testing.tcp_proxy import TcpProxy


class DbProxy(TcpProxy):
    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)
