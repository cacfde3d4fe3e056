"""Service requests that municipalities follow up: references made for the phone, the
catalogue (categories and responsible bodies), the life cycle, SLA clocks in working time,
and the service that ties them to the database.

The pure cores (``reference``, ``calendar``, ``sla``, ``lifecycle``, ``catalogue``) take values
and return values; ``store`` and ``service`` are the edges (the database, the audit log).
"""
