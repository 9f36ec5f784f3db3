// The Cosmictron JavaScript SDK (module ABI version 1, docs/reference/module-abi.md).
//
// The host evaluates this file before a module's own code, in a fresh V8 or QuickJS
// context with no files, network, clock or randomness: `cosmictron` is a global (and
// `require("cosmictron")` returns it, so a bundler's CommonJS output works).
//
//   const { table, reducer, init, t, ScheduleAt } = cosmictron;
//   const Message = table({ name: "agent_message", public: true, event: true }, {
//     id: t.i64.primaryKey().autoInc(),
//     role: t.str,
//     content: t.str,
//   });
//   reducer("run_agent", { prompt: t.str }, t.i64, (ctx, prompt) => {
//     return ctx.db.agent_message.insert({ role: "user", content: prompt }).id;
//   });
//
// How a call runs: the host calls `__cosmictron_call(reducer, frame)` with the call frame
// (msgpack, carried as a string of byte-valued characters) and gets the result frame
// back. Writes whose result the reducer does not read (inserts, updates, logs) are
// buffered and travel with the next read or in the result frame, so a reducer that only
// writes crosses into the host once: the call itself. An insert into a table with an
// auto_inc column returns a row whose auto_inc fields are read lazily: reading one
// flushes the buffer. Reads cross through `__cosmictron_host(batch)`, which the engine
// provides (docs/design/guest-modules.md, "JavaScript").
"use strict";

(function (global) {
  const ABI_VERSION = 1;
  const OP = { INSERT: 0, DELETE_BY_KEY: 1, DELETE_ROW: 2, UPDATE: 3, FIND: 4, FILTER: 5,
    RANGE: 6, ITER: 7, COUNT: 8, LOG: 9, RANDOM: 10 };

  // -- msgpack over byte strings (one character per byte) -------------------------------

  const f64 = new DataView(new ArrayBuffer(8));

  function utf8(text) { return unescape(encodeURIComponent(text)); }
  function fromUtf8(bytes) { return decodeURIComponent(escape(bytes)); }

  function bytesToString(array) {
    let out = "";
    for (let i = 0; i < array.length; i += 4096) {
      out += String.fromCharCode.apply(null, array.subarray(i, i + 4096));
    }
    return out;
  }

  function stringToBytes(text) {
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  function be(value, width) {
    let out = "";
    for (let shift = (width - 1) * 8; shift >= 0; shift -= 8) {
      out += String.fromCharCode(Math.floor(value / Math.pow(2, shift)) & 0xff);
    }
    return out;
  }

  function be64(value) {
    let big = BigInt.asUintN(64, BigInt(value));
    let out = "";
    for (let i = 0; i < 8; i++) {
      out = String.fromCharCode(Number(big & 0xffn)) + out;
      big >>= 8n;
    }
    return out;
  }

  function encode(value) {
    const parts = [];
    put(value, parts);
    return parts.join("");
  }

  function put(v, out) {
    if (v === null || v === undefined) { out.push("\xc0"); return; }
    switch (typeof v) {
      case "boolean": out.push(v ? "\xc3" : "\xc2"); return;
      case "number":
        if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) { putInt(v, out); return; }
        f64.setFloat64(0, v);
        out.push("\xcb");
        for (let i = 0; i < 8; i++) out.push(String.fromCharCode(f64.getUint8(i)));
        return;
      case "bigint":
        if (v >= -(2n ** 63n) && v < 2n ** 64n) {
          if (v >= -(2n ** 53n) && v <= 2n ** 53n) { putInt(Number(v), out); return; }
          out.push(v < 0n ? "\xd3" : "\xcf", be64(v));
          return;
        }
        throw new TypeError(`integer ${v} does not fit in 64 bits; use a 128-bit column type`);
      case "string": {
        const bytes = utf8(v);
        const n = bytes.length;
        if (n < 32) out.push(String.fromCharCode(0xa0 | n));
        else if (n < 256) out.push("\xd9", be(n, 1));
        else if (n < 65536) out.push("\xda", be(n, 2));
        else out.push("\xdb", be(n, 4));
        out.push(bytes);
        return;
      }
      case "object":
        if (v instanceof Uint8Array) {
          const n = v.length;
          if (n < 256) out.push("\xc4", be(n, 1));
          else if (n < 65536) out.push("\xc5", be(n, 2));
          else out.push("\xc6", be(n, 4));
          out.push(bytesToString(v));
          return;
        }
        if (Array.isArray(v)) {
          const n = v.length;
          if (n < 16) out.push(String.fromCharCode(0x90 | n));
          else if (n < 65536) out.push("\xdc", be(n, 2));
          else out.push("\xdd", be(n, 4));
          for (let i = 0; i < n; i++) put(v[i], out);
          return;
        }
        {
          const keys = Object.keys(v);
          const n = keys.length;
          if (n < 16) out.push(String.fromCharCode(0x80 | n));
          else out.push("\xde", be(n, 2));
          for (const key of keys) { put(key, out); put(v[key], out); }
          return;
        }
      default:
        throw new TypeError(`cannot send a ${typeof v} to the host`);
    }
  }

  function putInt(v, out) {
    if (v >= 0) {
      if (v < 128) out.push(String.fromCharCode(v));
      else if (v < 256) out.push("\xcc", be(v, 1));
      else if (v < 65536) out.push("\xcd", be(v, 2));
      else if (v < 4294967296) out.push("\xce", be(v, 4));
      else out.push("\xcf", be64(v));
    } else if (v >= -32) out.push(String.fromCharCode(0x100 + v));
    else if (v >= -128) out.push("\xd0", String.fromCharCode(v & 0xff));
    else if (v >= -32768) out.push("\xd1", be(v & 0xffff, 2));
    else if (v >= -2147483648) out.push("\xd2", be(v >>> 0, 4));
    else out.push("\xd3", be64(v));
  }

  function decode(text) {
    const reader = { s: text, i: 0 };
    const value = take(reader);
    if (reader.i !== text.length) throw new Error("trailing bytes after a msgpack document");
    return value;
  }

  function uint(r, width) {
    let v = 0;
    for (let k = 0; k < width; k++) v = v * 256 + r.s.charCodeAt(r.i++);
    return v;
  }

  function int64(r, signed) {
    const hi = uint(r, 4);
    const lo = uint(r, 4);
    if (hi < 0x200000) return hi * 4294967296 + lo; // below 2**53: a plain number (fast)
    if (signed && hi >= 0xffe00000) return (hi - 4294967296) * 4294967296 + lo;
    let big = (BigInt(hi) << 32n) | BigInt(lo);
    if (signed) big = BigInt.asIntN(64, big);
    return big;
  }

  function raw(r, n) { const s = r.s.substr(r.i, n); r.i += n; return s; }

  function take(r) {
    const b = r.s.charCodeAt(r.i++);
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xe0) === 0xa0) return fromUtf8(raw(r, b & 0x1f));
    if ((b & 0xf0) === 0x90) return list(r, b & 0x0f);
    if ((b & 0xf0) === 0x80) return map(r, b & 0x0f);
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return stringToBytes(raw(r, uint(r, 1)));
      case 0xc5: return stringToBytes(raw(r, uint(r, 2)));
      case 0xc6: return stringToBytes(raw(r, uint(r, 4)));
      case 0xca: { for (let k = 0; k < 4; k++) f64.setUint8(k, r.s.charCodeAt(r.i++)); return f64.getFloat32(0); }
      case 0xcb: { for (let k = 0; k < 8; k++) f64.setUint8(k, r.s.charCodeAt(r.i++)); return f64.getFloat64(0); }
      case 0xcc: return uint(r, 1);
      case 0xcd: return uint(r, 2);
      case 0xce: return uint(r, 4);
      case 0xcf: return int64(r, false);
      case 0xd0: { const v = uint(r, 1); return v >= 0x80 ? v - 0x100 : v; }
      case 0xd1: { const v = uint(r, 2); return v >= 0x8000 ? v - 0x10000 : v; }
      case 0xd2: { const v = uint(r, 4); return v >= 0x80000000 ? v - 0x100000000 : v; }
      case 0xd3: return int64(r, true);
      case 0xd9: return fromUtf8(raw(r, uint(r, 1)));
      case 0xda: return fromUtf8(raw(r, uint(r, 2)));
      case 0xdb: return fromUtf8(raw(r, uint(r, 4)));
      case 0xdc: return list(r, uint(r, 2));
      case 0xdd: return list(r, uint(r, 4));
      case 0xde: return map(r, uint(r, 2));
      case 0xdf: return map(r, uint(r, 4));
      default: throw new Error(`msgpack byte 0x${b.toString(16)} is not in the module ABI`);
    }
  }

  function list(r, n) { const out = new Array(n); for (let k = 0; k < n; k++) out[k] = take(r); return out; }
  function map(r, n) { const out = {}; for (let k = 0; k < n; k++) { const key = take(r); out[key] = take(r); } return out; }

  // -- column types -------------------------------------------------------------------------

  class Type {
    constructor(desc, toWire, fromWire, named) {
      this.desc = desc;          // the TYPE keys of the description
      this.toWire = toWire;      // JavaScript value -> wire form
      this.fromWire = fromWire;  // wire form -> JavaScript value
      this.named = named || null; // an enum or product declared once in "types"
    }
    primaryKey() { return new Column(this).primaryKey(); }
    autoInc() { return new Column(this).autoInc(); }
    unique() { return new Column(this).unique(); }
    index(kind) { return new Column(this).index(kind); }
    default(value) { return new Column(this).default(value); }
  }

  class Column {
    constructor(type) {
      this.type = type; this.isPrimaryKey = false; this.isAutoInc = false;
      this.isUnique = false; this.indexKind = null; this.hasDefault = false; this.defaultValue = undefined;
    }
    primaryKey() { this.isPrimaryKey = true; return this; }
    autoInc() { this.isAutoInc = true; return this; }
    unique() { this.isUnique = true; return this; }
    index(kind) { this.indexKind = kind || "btree"; return this; }
    default(value) { this.hasDefault = true; this.defaultValue = value; return this; }
  }

  const same = (v) => v;
  function scalar(name) { return new Type({ type: name }, same, same); }

  function int128(signed) {
    const name = signed ? "i128" : "u128";
    return new Type({ type: name }, (v) => {
      let big = BigInt(v);
      if (signed ? big < -(2n ** 127n) || big >= 2n ** 127n : big < 0n || big >= 2n ** 128n) {
        throw new RangeError(`${v} is out of range for ${name}`);
      }
      big = BigInt.asUintN(128, big);
      const out = new Uint8Array(16);
      for (let i = 15; i >= 0; i--) { out[i] = Number(big & 0xffn); big >>= 8n; }
      return out;
    }, (w) => {
      let big = 0n;
      for (let i = 0; i < 16; i++) big = (big << 8n) | BigInt(w[i]);
      return signed ? BigInt.asIntN(128, big) : big;
    });
  }

  function asBytes(v) { return v instanceof Uint8Array ? v : Uint8Array.from(v); }

  const t = {
    bool: scalar("bool"), str: scalar("str"), f32: scalar("f32"), f64: scalar("f64"),
    i8: scalar("i8"), i16: scalar("i16"), i32: scalar("i32"), i64: scalar("i64"),
    u8: scalar("u8"), u16: scalar("u16"), u32: scalar("u32"), u64: scalar("u64"),
    i128: int128(true), u128: int128(false),
    bytes: new Type({ type: "bytes" }, asBytes, same),
    Identity: new Type({ type: "Identity" }, asBytes, same),
    ConnectionId: new Type({ type: "ConnectionId" }, asBytes, same),
    Timestamp: scalar("Timestamp"),        // microseconds since the Unix epoch
    TimeDuration: scalar("TimeDuration"),  // microseconds
    ScheduleAt: new Type({ type: "ScheduleAt" }, (v) => [v.kind, v.micros],
      (w) => ({ kind: w[0], micros: w[1] })),
    Optional(of) {
      return new Type({ type: "Optional", of: of.desc },
        (v) => (v === null || v === undefined ? null : of.toWire(v)),
        (w) => (w === null ? null : of.fromWire(w)), of.named);
    },
    list(of) {
      return new Type({ type: "list", of: of.desc },
        (v) => Array.from(v, (x) => of.toWire(x)), (w) => w.map((x) => of.fromWire(x)), of.named);
    },
    Vector(dimension) {
      return new Type({ type: "Vector", dimension }, (v) => {
        const floats = Float32Array.from(v);
        const view = new DataView(new ArrayBuffer(floats.length * 4));
        floats.forEach((x, i) => view.setFloat32(i * 4, x, true));
        return new Uint8Array(view.buffer);
      }, (w) => {
        const view = new DataView(w.buffer, w.byteOffset, w.byteLength);
        const out = [];
        for (let i = 0; i < w.byteLength; i += 4) out.push(view.getFloat32(i, true));
        return out;
      });
    },
    enum(name, members) {
      const type = new Type({ type: "ref", ref: name }, same, same);
      type.named = { type: "enum", enum: name, members: members.slice() };
      return type;
    },
    product(name, fields) {
      const names = Object.keys(fields);
      const types = names.map((n) => fields[n]);
      const type = new Type({ type: "ref", ref: name },
        (v) => names.map((n, i) => types[i].toWire(v[n])),
        (w) => { const o = {}; names.forEach((n, i) => { o[n] = types[i].fromWire(w[i]); }); return o; });
      type.named = { type: "product", product: name,
        fields: names.map((n, i) => Object.assign({ name: n }, types[i].desc)) };
      type.nested = types;
      return type;
    },
  };
  t.string = t.str; t.int = t.i64; t.float = t.f64;

  const ScheduleAt = {
    interval(seconds) { return { kind: "interval", micros: Math.round(seconds * 1e6) }; },
    at(micros) { return { kind: "at", micros }; },
  };

  // -- the description ------------------------------------------------------------------------

  const tables = [];
  const reducers = [];
  const namedTypes = [];
  const visibilityFilters = [];

  function declareType(type) {
    if (!type || !type.named) return;
    for (const sub of type.nested || []) declareType(sub);
    const key = type.named.enum || type.named.product;
    if (!namedTypes.some((n) => (n.enum || n.product) === key)) namedTypes.push(type.named);
  }

  function camel(name) {
    return name.split("_").map((p) => p.charAt(0).toUpperCase() + p.slice(1)).join("");
  }

  class TableDef {
    constructor(options, columns) {
      if (!options || typeof options.name !== "string") throw new TypeError("table({name: ...}, columns): a table needs a name");
      this.name = options.name;
      this.className = options.class || camel(options.name);
      this.names = Object.keys(columns);
      this.columns = this.names.map((n) => (columns[n] instanceof Column ? columns[n] : new Column(columns[n])));
      this.columns.forEach((c, i) => {
        if (!(c.type instanceof Type)) throw new TypeError(`table ${this.name}: column ${this.names[i]} is not a cosmictron type (t.i64, t.str, ...)`);
        declareType(c.type);
      });
      this.autoInc = this.names.filter((_, i) => this.columns[i].isAutoInc);
      const keyColumns = this.names.filter((_, i) => this.columns[i].isPrimaryKey);
      this.primaryKey = options.primaryKey || keyColumns;
      const indexes = [];
      this.columns.forEach((c, i) => {
        if (c.isUnique) indexes.push({ name: this.names[i], columns: [this.names[i]], kind: c.indexKind || "btree", unique: true });
        else if (c.indexKind) indexes.push({ name: this.names[i], columns: [this.names[i]], kind: c.indexKind, unique: false });
      });
      for (const index of options.indexes || []) {
        indexes.push({ name: index.name, columns: index.columns, kind: index.kind || "btree", unique: !!index.unique });
      }
      this.desc = {
        name: this.name, class: this.className,
        columns: this.names.map((n, i) => {
          const c = this.columns[i];
          const column = Object.assign({ name: n }, c.type.desc);
          if (c.isAutoInc) column.auto_inc = true;
          if (c.hasDefault) column.default = c.type.toWire(c.defaultValue);
          return column;
        }),
        primary_key: this.primaryKey, indexes,
        public: !!options.public, event: !!options.event, scheduled: options.scheduled || null,
      };
      // A table is also the type of its rows (a scheduled reducer's parameter).
      this.type = new Type({ type: "ref", ref: this.className }, (v) => this.toWire(v), (w) => this.fromWire(w));
    }

    toWire(row) {
      if (row === null || typeof row !== "object") throw new TypeError(`a row of ${this.name} is an object, got ${row}`);
      return this.names.map((n, i) => {
        const c = this.columns[i];
        let v = row[n];
        if (v === undefined) {
          if (c.isAutoInc) v = 0;
          else if (c.hasDefault) v = c.defaultValue;
        }
        return c.type.toWire(v === undefined ? null : v);
      });
    }

    fromWire(wire) {
      const row = {};
      this.names.forEach((n, i) => { row[n] = this.columns[i].type.fromWire(wire[i]); });
      return row;
    }

    keyOf(accessor) {
      if (accessor === "primary_key" || this.names.indexOf(accessor) < 0) {
        const index = this.desc.indexes.find((x) => x.name === accessor);
        const columns = accessor === "primary_key" ? this.primaryKey : index ? index.columns : null;
        if (!columns) throw new TypeError(`table ${this.name} has no index or unique column ${accessor}`);
        const types = columns.map((n) => this.columns[this.names.indexOf(n)].type);
        return (key) => (Array.isArray(key) ? key.map((v, i) => types[i].toWire(v)) : types[0].toWire(key));
      }
      const type = this.columns[this.names.indexOf(accessor)].type;
      return (key) => type.toWire(key);
    }
  }

  function table(options, columns) {
    const def = new TableDef(options, columns);
    if (tables.some((x) => x.name === def.name)) throw new TypeError(`table ${def.name} is declared twice`);
    tables.push(def);
    return def;
  }

  function typeOf(x) { return x instanceof TableDef ? x.type : x; }

  function declareReducer(kind, name, params, returns, fn) {
    if (typeof returns === "function" && fn === undefined) { fn = returns; returns = null; }
    if (typeof name !== "string") throw new TypeError("a reducer needs a name");
    if (typeof fn !== "function") throw new TypeError(`reducer ${name}: the last argument is its function`);
    const names = Object.keys(params || {});
    const types = names.map((n) => typeOf(params[n]));
    types.forEach(declareType);
    returns = returns ? typeOf(returns) : null;
    declareType(returns);
    reducers.push({
      fn, types, returns,
      desc: { name, kind, params: names.map((n, i) => Object.assign({ name: n }, types[i].desc)),
        returns: returns ? returns.desc : null },
    });
  }

  const reducer = (name, params, returns, fn) => declareReducer("reducer", name, params, returns, fn);
  const lifecycle = (kind) => (name, fn) => declareReducer(kind, name, {}, null, fn);

  // -- a call ---------------------------------------------------------------------------------

  class HostError extends Error {
    constructor(kind, message) { super(message); this.name = kind; this.kind = kind; }
  }

  let call = null; // the call in progress: { buffer, resolvers }

  function host(batch) {
    const answer = decode(global.__cosmictron_host(encode(batch)));
    return answer;
  }

  function flush(extra) {
    const ops = call.buffer;
    const resolvers = call.resolvers;
    call.buffer = [];
    call.resolvers = [];
    if (extra) ops.push(extra);
    if (!ops.length) return undefined;
    const answer = host(ops);
    const results = answer[1];
    for (let i = 0; i < results.length && i < resolvers.length; i++) if (resolvers[i]) resolvers[i](results[i]);
    if (answer[0] !== 0) throw new HostError(answer[4], answer[3]);
    return extra ? results[results.length - 1] : undefined;
  }

  function buffer(op, resolve) { call.buffer.push(op); call.resolvers.push(resolve || null); }

  function keyAccessor(def, accessor) {
    const key = def.keyOf(accessor);
    const name = def.name;
    return {
      find(value) { const w = flush([OP.FIND, name, accessor, key(value)]); return w === null ? null : def.fromWire(w); },
      delete(value) { return flush([OP.DELETE_BY_KEY, name, accessor, key(value)]); },
      update(row) { buffer([OP.UPDATE, name, accessor, def.toWire(row)]); return row; },
      filter(value, options) {
        if (value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Uint8Array) &&
            ("start" in value || "stop" in value)) {
          const start = value.start === undefined || value.start === null ? null : key(value.start);
          const stop = value.stop === undefined || value.stop === null ? null : key(value.stop);
          return flush([OP.RANGE, name, accessor, start, stop, !!value.inclusive]).map((w) => def.fromWire(w));
        }
        return flush([OP.FILTER, name, accessor, key(value)]).map((w) => def.fromWire(w));
      },
    };
  }

  function handle(def) {
    const name = def.name;
    const h = {
      insert(row) {
        const wire = def.toWire(row);
        const stored = def.fromWire(wire);
        if (!def.autoInc.length) { buffer([OP.INSERT, name, wire]); return stored; }
        // auto_inc values come from the host: read lazily, so an insert whose id is not
        // read costs no crossing.
        let answered = null;
        buffer([OP.INSERT, name, wire], (w) => { answered = def.fromWire(w); });
        const out = Object.assign({}, stored);
        for (const column of def.autoInc) {
          let value = stored[column];
          let known = value !== 0 && value !== 0n;
          Object.defineProperty(out, column, {
            enumerable: true, configurable: true,
            get() {
              if (!known) {
                if (answered === null) flush();
                value = answered[column]; known = true;
              }
              return value;
            },
            set(v) { value = v; known = true; },
          });
        }
        return out;
      },
      delete(row) { return flush([OP.DELETE_ROW, name, def.toWire(row)]); },
      iter() { return flush([OP.ITER, name]).map((w) => def.fromWire(w)); },
      count() { return flush([OP.COUNT, name]); },
    };
    const accessors = new Set([...def.primaryKey, ...def.desc.indexes.map((x) => x.name)]);
    if (def.primaryKey.length > 1) accessors.add("primary_key");
    for (const accessor of accessors) {
      let cached = null;
      Object.defineProperty(h, accessor, { get: () => cached || (cached = keyAccessor(def, accessor)) });
    }
    return h;
  }

  // Handles hold no state of their own (the call in progress is `call`), so one set
  // serves every call: building them per call was a third of a small reducer's time.
  let sharedDb = null;
  function makeDb() {
    if (sharedDb !== null && sharedDb.__tables === tables.length) return sharedDb;
    const db = {};
    for (const def of tables) {
      let cached = null;
      Object.defineProperty(db, def.name, { get: () => cached || (cached = handle(def)) });
    }
    Object.defineProperty(db, "__tables", { value: tables.length });
    sharedDb = db;
    return db;
  }

  const LEVELS = { debug: 0, info: 1, warn: 2, warning: 2, error: 3, critical: 4 };
  function logAt(level) {
    return (...parts) => {
      if (!call) return;
      const text = parts.map((p) => (typeof p === "string" ? p : String(p))).join(" ");
      buffer([OP.LOG, level, text]);
    };
  }
  const log = {};
  for (const name of Object.keys(LEVELS)) log[name] = logAt(LEVELS[name]);

  function errorKind(error) {
    if (error instanceof HostError) return error.kind;
    if (error && typeof error.name === "string" && error.name !== "Error") return error.name;
    return "ReducerError";
  }

  // One call frame in, one result frame out (module-abi.md, "A reducer call").
  function run(position, frameText) {
    const frame = decode(frameText);
    const entry = reducers[position];
    if (!entry) throw new Error(`no reducer at position ${position}`);
    const args = frame[1].map((w, i) => entry.types[i].fromWire(w));
    call = { buffer: [], resolvers: [] };
    const ctx = {
      db: makeDb(),
      sender: frame[2],
      connectionId: frame[3],
      timestamp: frame[4],
      identity: frame[5],
      random(n) { return flush([OP.RANDOM, n === undefined ? 1 : n]); },
    };
    ctx.connection_id = ctx.connectionId;
    ctx.rng = { u64: () => ctx.random(1)[0] };
    let value;
    try {
      const returned = entry.fn(ctx, ...args);
      value = entry.returns ? entry.returns.toWire(returned) : null;
    } catch (error) {
      // The engine's, not the reducer's: the host's stop signal, and QuickJS's out of
      // memory and stack overflow (InternalError), after which the context is replaced.
      if (error && (error.__cosmictron_stop || error.name === "InternalError")) throw error;
      const ops = call.buffer.filter((op) => op[0] === OP.LOG);
      call = null;
      const message = error instanceof Error ? error.message : String(error);
      return encode([1, message, ops, errorKind(error)]);
    }
    const ops = call.buffer;
    call = null;
    return encode([0, value, ops]);
  }

  function describe() {
    return encode({
      abi: ABI_VERSION,
      tables: tables.map((x) => x.desc),
      reducers: reducers.map((r) => r.desc),
      types: namedTypes,
      visibility_filters: visibilityFilters,
    });
  }

  const cosmictron = {
    table, reducer, t, ScheduleAt, log, HostError,
    init: lifecycle("init"),
    clientConnected: lifecycle("client_connected"),
    clientDisconnected: lifecycle("client_disconnected"),
    visibilityFilter(sql) { visibilityFilters.push(sql); },
    hex(bytes) { return Array.from(bytes, (b) => (b < 16 ? "0" : "") + b.toString(16)).join(""); },
    msgpack: { encode, decode },
  };
  Object.freeze(cosmictron);
  Object.defineProperty(global, "cosmictron", { value: cosmictron });
  Object.defineProperty(global, "require", {
    value(name) {
      if (name === "cosmictron") return cosmictron;
      throw new Error(`require(${JSON.stringify(name)}): a Cosmictron module can only require "cosmictron" (bundle the rest)`);
    },
  });
  // A bundler's CommonJS output may assign exports; they are ignored (reducers and tables
  // are what a module declares by calling `reducer` and `table`).
  if (!("module" in global)) global.module = { exports: {} };
  if (!("exports" in global)) global.exports = global.module.exports;
  global.__cosmictron_call = run;
  global.__cosmictron_describe = describe;
})(globalThis);
