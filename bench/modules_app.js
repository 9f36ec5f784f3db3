// The benchmark's insert module in JavaScript (bench/modules.py), the twin of
// bench/modules_app.py; the benchmark runs it on QuickJS and on V8.
const { table, reducer, t } = cosmictron;

table({ name: "item", public: true }, {
  id: t.i64.primaryKey(),
  name: t.str,
  qty: t.i64,
});

reducer("add_item", { id: t.i64, name: t.str, qty: t.i64 }, (ctx, id, name, qty) => {
  ctx.db.item.insert({ id, name, qty });
});

reducer("noop", {}, (ctx) => {});
