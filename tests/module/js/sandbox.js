// Misbehaving JavaScript reducers for tests/module/test_js_server.py. Each writes a
// note first, so a rollback shows; each must fail only its own call.
const { table, reducer, t } = cosmictron;

table({ name: "note", public: true }, {
  id: t.i64.primaryKey().autoInc(),
  text: t.str,
});

const write = (ctx) => ctx.db.note.insert({ text: "written" });

reducer("write", {}, t.i64, (ctx) => write(ctx).id);
reducer("spin", {}, (ctx) => { write(ctx); for (;;) {} });
reducer("spin_after_read", {}, (ctx) => { write(ctx); ctx.db.note.count(); for (;;) {} });
reducer("allocate", {}, (ctx) => {
  write(ctx);
  const hoard = [];
  for (;;) hoard.push(new Array(1 << 16).fill(hoard.length));
});
reducer("recurse", {}, (ctx) => { write(ctx); const deeper = (n) => deeper(n + 1) + 1; return deeper(0); });
reducer("throw", {}, (ctx) => { write(ctx); throw new TypeError("the module threw this"); });
reducer("throw_value", {}, (ctx) => { write(ctx); throw 42; });
reducer("bad_batch", {}, (ctx) => { write(ctx); ctx.db.note.count(); globalThis.__cosmictron_host("\xc1 not msgpack"); });
reducer("bad_table", {}, (ctx) => {
  write(ctx);
  globalThis.__cosmictron_host(cosmictron.msgpack.encode([[7, "no_such_table"]]));
});
reducer("bad_value", {}, (ctx) => { write(ctx); ctx.db.note.insert({ text: 12345 }); });
reducer("bad_return", {}, t.u8, (ctx) => { write(ctx); return 300; });
reducer("clock", {}, t.i64, (ctx) => { write(ctx); return Date.now(); });
reducer("new_date", {}, t.str, (ctx) => { write(ctx); return String(new Date()); });
reducer("random", {}, t.f64, (ctx) => { write(ctx); return Math.random(); });
reducer("file", {}, (ctx) => { write(ctx); require("fs").readFileSync("/etc/passwd"); });
reducer("network", {}, (ctx) => { write(ctx); fetch("http://127.0.0.1/"); });
reducer("timer", {}, (ctx) => { write(ctx); setTimeout(() => {}, 1); });
reducer("swallow", {}, t.i64, (ctx) => {
  // Catching everything must not hide a read from the host: the read is still answered.
  let n = -1;
  try { n = ctx.db.note.count(); } catch (e) { /* a module that catches too much */ }
  return n;
});
