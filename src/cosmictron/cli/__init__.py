"""The ``cosmictron-cli`` command line.

Owns: argument parsing and output formatting. ``main`` holds the group and the one edge
that turns every error into one line and an exit code; ``client`` speaks HTTP to a
server, ``websocket`` its subscription protocol, ``settings`` keeps the saved default
server and tokens (cli.toml), ``context`` the options every server command shares and
the ``CommandContext`` they resolve to, and ``output`` prints tables or JSON. The
commands live by family: ``databases`` (deploy, describe, list, delete), ``data`` (call,
sql), ``identity`` and ``streams`` (logs, subscribe). A command parses, makes one
request (or calls ``host`` for ``local-call``) and shapes the reply.
"""
