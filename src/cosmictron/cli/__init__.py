"""The ``cosmictron-cli`` command line.

Owns: argument parsing and output formatting; each command calls one function below it
and turns ``CosmictronError`` into one line and a non-zero exit. The server commands of
DESIGN.md §6 arrive with the server; today the CLI reports its version and runs reducers
against a local data directory.
"""
