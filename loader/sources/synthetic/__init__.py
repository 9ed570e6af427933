"""A deterministic synthetic behavioural stream, written as Snowplow enriched TSV.

Why: the loader, the dbt models and the personalisation layer need input that looks like what a
real Snowplow pipeline delivers (sessions, cross-device identities, e-commerce funnels, bots,
duplicates and late arrivals) without a tracker, a collector or customer data. The stream is a
pure function of ``SyntheticConfig``: same config, same bytes, so tests and benchmarks can rely
on it. Lines come out in arrival order (``collector_tstamp``), as a pipeline would read them.

The package, by concern:

- ``data/*.csv``: the shop's categories and product words, locations, devices, bots (data)
- ``tables``: those tables loaded, and the fixed world (schemas, calibration, traffic sources)
- ``catalog``: the products, made from the category table
- ``shoppers``: the simulator (users, tastes, devices, sessions, bots), day by day
- ``apps``: the shop's iOS and Android apps (installs, app sessions, screens, engagement), some
  of whose users also shop on the web and sign in on both; their own random sequence, so the
  web stream is the same with or without them (``SyntheticConfig.apps``)
- ``delivery``: timestamps, ids, late and duplicate deliveries, arrival order
- ``source``: ``generate_lines`` and ``SyntheticSource``
"""

from loader.sources.synthetic.catalog import Product, catalog
from loader.sources.synthetic.config import SyntheticConfig
from loader.sources.synthetic.source import SyntheticSource, generate_lines

__all__ = ["Product", "SyntheticConfig", "SyntheticSource", "catalog", "generate_lines"]
