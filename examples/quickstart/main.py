"""Run the quickstart module embedded: open a database, call reducers, read, reopen.

Usage: python examples/quickstart/main.py [DATA_DIR]   (default: ./data/quickstart)
"""

import sys
from pathlib import Path

import cosmictron

HERE = Path(__file__).parent


def main() -> None:
    data_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "data/quickstart")
    with cosmictron.Database.open(data_dir, module=HERE / "app.py") as db:
        print(f"opened {data_dir} at transaction offset {db.tx_offset}")
        open_tasks = db.subscribe(
            ["SELECT * FROM task WHERE done = false"],
            on_update=lambda update: print(f"  live update at offset {update['tx_offset']}: "
                                           f"{update['tables']}"),
        )  # fmt: skip
        print(f"subscribed: {len(open_tasks.initial['tables'][0]['rows'])} open task(s) now")
        message_id = db.call("run_agent", "Summarise the report")
        print(f"run_agent returned message id {message_id}")
        task = db.call("add_task", f"Follow up on message {message_id}", priority=2)
        print(f"add_task returned {task}")
        db.call("complete_task", task.id)
        try:
            db.call("add_task", "   ")
        except cosmictron.ReducerFailed as error:
            print(f"a failing reducer changes nothing: {error}")
        for row in db.table("task").priority.filter(start=1):
            print(f"  task {row.id}: {row.title!r} done={row.done} priority={row.priority}")
        print(f"{db.table('agent_message').count()} messages; last offset {db.tx_offset}")
        query = "SELECT title, priority FROM task WHERE priority >= :p ORDER BY priority DESC"
        print(f"SQL: {query} -> {db.sql(query, {'p': 1}).rows}")
        open_tasks.unsubscribe()
        for line in db.logs():
            print(f"  module log {line['level']}: {line['message']}")
    with cosmictron.Database.open(data_dir) as db:
        print(f"reopened from disk: {db.table('task').count()} tasks, offset {db.tx_offset}")


if __name__ == "__main__":
    main()
