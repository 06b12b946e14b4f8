"""SQL aggregation of the indicators (SQLAlchemy Core, SQLite and PostgreSQL alike).

Every query groups in the database and returns a handful of rows per campaign; Python only
combines those grouped counts (:mod:`dialer.reports.definitions`). Period and day boundaries
are computed in Python (:class:`~dialer.reports.filters.ReportFilter`) and bound as
parameters; per-day buckets are ``CASE`` expressions over those bounds. The one
dialect-specific piece is :class:`~.sql.seconds_between` (a duration in seconds), compiled for
each dialect in :mod:`.sql`.

Expressions with bound parameters are never put in a ``GROUP BY`` directly (PostgreSQL cannot
tell two parameters are equal): they are computed in an inner select and grouped outside.

Layout: :mod:`.scope` (the filter's conditions and the campaigns, shared by every group), one
module per indicator group (:mod:`.effectiveness` with contactability, :mod:`.recovery`,
:mod:`.appointments`, :mod:`.satisfaction`, :mod:`.pqrs`, :mod:`.compliance`, :mod:`.agents`,
:mod:`.whatsapp`) and :mod:`.builder`, which runs them in order.
"""

from dialer.reports.queries.builder import STEPS, Progress, build_report
from dialer.reports.queries.compliance import open_intervals
from dialer.reports.queries.sql import local_date, seconds_between

__all__ = ["STEPS", "Progress", "build_report", "local_date", "open_intervals", "seconds_between"]
