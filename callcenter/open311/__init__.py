"""Open311 GeoReport v2 for 1415: the catalogue as services, requests made and followed by
client applications (FixMyStreet and others), with mySociety's extended statuses and
``servicerequestupdates``.

``formats`` writes the specification's JSON and XML (pure); ``statuses`` maps the life cycle to
Open311's statuses (pure); ``clients`` issues and checks client keys; ``read``, ``intake`` and
``updates`` (a client's update on its request) are the database edges; ``http`` is the router
mounted at ``/open311/v2``.
"""
