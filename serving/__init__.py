"""Live mode and the decision API: stream attributes updated per event, batch attributes
(profiles, segments, recommendations) synced from the warehouse into an online store, served
through Snowplow Signals-compatible endpoints and Persona's own ``/v1/decide``.

The layout is the flow: ``definitions`` (attribute groups and services as data), ``stream``
(per-event aggregation), ``batch`` (warehouse → online store), ``stores/`` (the online store:
``memory``, ``redis``), ``service`` (plain Python: what the API does), ``http`` (a thin
Starlette layer over it), ``live`` (one process hosting collector, loader, refresh and API),
``interventions/`` (rules fired when attributes change: SSE, webhooks, the SQL record).
"""
