"""Live subscriptions: a query's rows, then exactly what each transaction changes.

Owns: compiling subscribable queries (``compile_live``: ``SELECT t.*`` over inner joins
with WHERE filters and an optional ``ORDER BY … LIMIT n``), maintaining them
incrementally from each transaction's ``TableChange`` lists (``LiveQuery.delta``, the
telescoping join delta of docs/design/subscriptions.md), sharing identical queries
between subscribers, and delivering one update per transaction per subscriber
(``SubscriptionManager``); and what an update is: several merged into one
(``merge_updates``), and what some queries saw of a past transaction (``replay``, when
``replayable``), for a client that resumes. Imports: ``cosmictron.datastore``,
``cosmictron.query`` and the root modules; the host supplies the writer lock and
calls ``on_commit`` first of its commit listeners (while any query is live). See
docs/guide/subscriptions.md.

Modules, each importing only those listed before it: ``terms`` (FROM positions and
the plan of each delta term), ``delta`` (a transaction's changes and the delta sum),
``window`` (a live top-N), ``guards`` and ``join_filters`` (which changed rows can
matter; row-level security that reads other tables), ``live`` (``LiveQuery``),
``result_shape`` (the name and columns of a result that is not one table's rows),
``reevaluated`` (``ReevaluatedQuery``, any other SELECT),
``compile`` (``compile_live``), ``fanout`` (updates), ``index`` (which queries a
transaction wakes), ``initial`` (initial rows on a snapshot), ``manager``.
"""

from cosmictron.subscription.compile import compile_live
from cosmictron.subscription.fanout import Update, merge_updates, replay, replayable
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.manager import Subscription, SubscriptionManager

__all__ = [
    "LiveQuery",
    "Subscription",
    "SubscriptionManager",
    "Update",
    "compile_live",
    "merge_updates",
    "replay",
    "replayable",
]
