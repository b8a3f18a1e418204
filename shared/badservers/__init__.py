"""Bad *servers* for testing mTLS clients, as data: the rows, what a client did, the verdicts.

``mtls-server badservers`` (``server/badservers``) serves the rows; the pytest
plugin's ``mtls_bad_servers`` fixture starts it; both judge with :func:`judge`
and report with :mod:`.report`. No I/O here.
"""

from mtls_ref.shared.badservers.judge import Status, Verdict, judge
from mtls_ref.shared.badservers.observation import Activity, Observation, Stage
from mtls_ref.shared.badservers.report import render_json, render_junit, render_table, summary
from mtls_ref.shared.badservers.rows import ROWS, BadServerRow, Expect, row_named

__all__ = [
    "ROWS",
    "Activity",
    "BadServerRow",
    "Expect",
    "Observation",
    "Stage",
    "Status",
    "Verdict",
    "judge",
    "render_json",
    "render_junit",
    "render_table",
    "row_named",
    "summary",
]
