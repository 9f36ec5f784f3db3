// The conformance module in JavaScript: the twin of app.py (Python) and of
// guest/rust/examples/conformance (Rust). The three declare the same tables, types and
// reducers in the same order and must behave the same: test_conformance.py runs one
// scenario against each (this one on QuickJS and on V8). Change one, change the others.
const { table, reducer, init, clientConnected, clientDisconnected, t, ScheduleAt, log } = cosmictron;

class ReducerError extends Error {
  constructor(message) { super(message); this.name = "ReducerError"; }
}

const Color = t.enum("Color", ["RED", "GREEN", "BLUE"]);
const Point = t.product("Point", { x: t.i64, y: t.i64 });

const sampleColumns = {
  name: t.str, small: t.u8, level: t.i16, qty: t.u32, big: t.i128, huge: t.u128,
  ratio: t.f32, score: t.f64, flag: t.bool, data: t.bytes, who: t.Identity,
  at: t.Timestamp, span: t.TimeDuration, note: t.Optional(t.str), tags: t.list(t.i64),
  color: Color, point: Point, embedding: t.Vector(3),
};

table({ name: "sample", public: true }, {
  id: t.i64.primaryKey().autoInc(),
  ...sampleColumns,
  name: t.str.unique(),
  level: t.i16.index("btree"),
  qty: t.u32.index("hash"),
});

table({ name: "account", public: true }, {
  name: t.str.primaryKey(),
  balance: t.i64,
});

table({ name: "audit_event", public: true, event: true }, {
  id: t.i64.primaryKey().autoInc(),
  message: t.str,
});

const Tick = table({ name: "tick", scheduled: "on_tick" }, {
  id: t.i64.primaryKey().autoInc(),
  scheduled_at: t.ScheduleAt,
  label: t.str,
});

reducer("store", sampleColumns, t.i64, (ctx, ...values) => {
  const row = {};
  Object.keys(sampleColumns).forEach((name, i) => { row[name] = values[i]; });
  const stored = ctx.db.sample.insert(row);
  log.info(`stored ${row.name} as ${stored.id}`);
  return stored.id;
});

reducer("rename", { old: t.str, new: t.str }, t.bool, (ctx, old, renamed) => {
  const row = ctx.db.sample.name.find(old);
  if (row === null) return false;
  ctx.db.sample.id.update({ ...row, name: renamed });
  return true;
});

reducer("remove", { name: t.str }, t.bool, (ctx, name) => ctx.db.sample.name.delete(name));

reducer("levels", { low: t.i16, high: t.i16 }, t.list(t.str), (ctx, low, high) =>
  ctx.db.sample.level.filter({ start: low, stop: high, inclusive: true }).map((row) => row.name));

reducer("count_of", { qty: t.u32 }, t.i64, (ctx, qty) => ctx.db.sample.qty.filter(qty).length);

reducer("total", {}, t.i64, (ctx) => ctx.db.sample.count() + ctx.db.account.iter().length);

reducer("transfer", { source: t.str, target: t.str, amount: t.i64 }, t.i64, (ctx, source, target, amount) => {
  const src = ctx.db.account.name.find(source);
  const dst = ctx.db.account.name.find(target);
  if (src === null || dst === null) throw new ReducerError(`no such account: ${src === null ? source : target}`);
  ctx.db.account.name.update({ name: source, balance: src.balance - amount });
  ctx.db.account.name.update({ name: target, balance: dst.balance + amount });
  const after = ctx.db.account.name.find(source);
  if (after.balance < 0) {
    log.warning(`refused: ${source} would owe ${-after.balance}`);
    throw new ReducerError(`insufficient funds: ${source} has ${src.balance}`);
  }
  ctx.db.audit_event.insert({ message: `moved ${amount} from ${source} to ${target}` });
  return after.balance;
});

reducer("duplicate", { name: t.str }, (ctx, name) => {
  ctx.db.account.insert({ name, balance: 1 });
});

reducer("schedule", { label: t.str }, (ctx, label) => {
  ctx.db.tick.insert({ scheduled_at: ScheduleAt.at(ctx.timestamp), label });
});

reducer("on_tick", { row: Tick }, (ctx, row) => {
  ctx.db.audit_event.insert({ message: `tick ${row.label}` });
});

reducer("roll", {}, t.u64, (ctx) => ctx.random(1)[0]);

reducer("whoami", {}, t.Identity, (ctx) => ctx.sender);

reducer("now", {}, t.Timestamp, (ctx) => ctx.timestamp);

init("on_init", (ctx) => {
  ctx.db.account.insert({ name: "alice", balance: 100 });
  ctx.db.account.insert({ name: "bob", balance: 0 });
  log.info("initialised");
});

clientConnected("on_connect", (ctx) => {
  ctx.db.audit_event.insert({ message: "connected" });
});

clientDisconnected("on_disconnect", (ctx) => {
  ctx.db.audit_event.insert({ message: "disconnected" });
});
