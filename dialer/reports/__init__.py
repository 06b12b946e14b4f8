"""Indicators and monthly reports (issue 8): definitions, SQL aggregation, XLSX and HTML
exports, the monthly schedule and stored report runs.

Definitions: ``docs/indicators.md``. Entry points: :func:`dialer.reports.queries.build_report`,
:func:`dialer.reports.xlsx.write_xlsx`, :func:`dialer.reports.html.render_html`,
:func:`dialer.reports.runs.run_due`.
"""
