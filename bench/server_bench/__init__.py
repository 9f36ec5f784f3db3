"""The server benchmark's parts; ``bench/server.py`` is its command (see its docstring).

One module per job, in the order the run uses them:

- ``workload``: what both engines run: the Cosmictron module, the PostgreSQL schema and
  function, the fan-out query, and the ``CallReducer`` frame the load generator sends;
- ``scenarios``: the settings (full and ``--quick``) and the throughput scenarios;
- ``peers``: the servers measured, started and stopped by the parent process: Cosmictron
  (``cosmictron-cli start``, with ``/metrics`` counters and optional profiling) and a
  throwaway PostgreSQL cluster;
- ``load``, ``load_postgres``, ``fanout``, ``client``: the load generator, which runs in a
  process of its own (``server.py --client SPEC``): closed-loop and pipelined calls over
  WebSocket and over libpq, and the subscription fan-out;
- ``measure``: the parent's side: runs each load in a child process, accounts the
  servers' CPU over the measured window, combines slices and judges the goals;
- ``report``: the printed table and lines.

The load-generator modules import only the standard library at module level (aiohttp,
psycopg and uvloop inside functions), and none imports Cosmictron: the client process
must not pay for it. The modules import ``common``, ``figures`` and ``processes`` from
``bench/`` as top-level modules, as every benchmark command does.
"""
