/**
 * Column values between their wire forms and TypeScript, by the column's type description
 * (as `GET /v1/database/{name}/schema` describes it, e.g. `{"type": "Optional", "of":
 * {"type": "i64"}}`).
 *
 * | type                         | TypeScript                                   |
 * | ---------------------------- | -------------------------------------------- |
 * | i8 … i32, u8 … u32, f32, f64 | number                                       |
 * | i64, u64, i128, u128         | bigint (JSON carries one past ±2^53 as a decimal string; msgpack natively) |
 * | TimeDuration                 | bigint (microseconds)                        |
 * | bool, str                    | boolean, string                              |
 * | bytes                        | Uint8Array (hex in JSON, bin in msgpack)     |
 * | Identity, ConnectionId       | string (hex)                                 |
 * | Timestamp                    | string (RFC 3339, microseconds)              |
 * | ScheduleAt                   | `{interval_micros: bigint}` or `{at: string}`|
 * | Optional[T]                  | T or null                                    |
 * | list[T], Vector[N]           | array                                        |
 * | enum                         | the member's name                            |
 * | product                      | object by field name                         |
 */

export interface TypeDescription {
  type: string;
  of?: TypeDescription;
  fields?: Array<TypeDescription & { name: string }>;
  members?: string[];
  [more: string]: unknown;
}

const BIG = new Set(["i64", "u64", "i128", "u128", "TimeDuration"]);

/** Whether values of this type are `bigint`s. */
export function isBigIntType(t: TypeDescription): boolean {
  return BIG.has(t.type);
}

function toBigInt(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" || typeof value === "string") return BigInt(value);
  throw new TypeError(`expected an integer, got ${String(value)}`);
}

export function hexToBytes(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < bytes.length; i++) hex += (bytes[i] < 16 ? "0" : "") + bytes[i].toString(16);
  return hex;
}

/** The TypeScript value of a wire value of a column of type `t`. */
export function decodeValue(value: unknown, t: TypeDescription): unknown {
  if (value === null || value === undefined) return null;
  switch (t.type) {
    case "Optional":
      return decodeValue(value, t.of!);
    case "bytes":
      return value instanceof Uint8Array ? value : hexToBytes(value as string);
    case "list":
      return (value as unknown[]).map((item) => decodeValue(item, t.of!));
    case "ScheduleAt": {
      const v = value as Record<string, unknown>;
      return "interval_micros" in v ? { interval_micros: toBigInt(v.interval_micros) } : v;
    }
    case "product": {
      const v = value as Record<string, unknown>;
      const out: Record<string, unknown> = {};
      for (const field of t.fields ?? []) out[field.name] = decodeValue(v[field.name], field);
      return out;
    }
    default:
      if (BIG.has(t.type)) return toBigInt(value);
      if (typeof value === "bigint") return Number(value); // msgpack's uint64 of a small type
      return value;
  }
}

/** A row's values decoded column by column. */
export function decodeRow(
  raw: Record<string, unknown>,
  columns: ReadonlyArray<{ name: string } & TypeDescription>,
): Record<string, unknown> {
  const row: Record<string, unknown> = {};
  for (const column of columns) row[column.name] = decodeValue(raw[column.name], column);
  return row;
}

/**
 * JSON text of a value, writing a `bigint` as a bare integer (the server parses JSON
 * numbers exactly) and a `Uint8Array` as hex. Object keys keep their order; `undefined`
 * members are left out, as `JSON.stringify` does.
 */
export function stringify(value: unknown): string {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "bigint":
      return value.toString();
    case "number":
      if (!Number.isFinite(value)) throw new TypeError(`${value} has no JSON form`);
      return String(value);
    case "string":
    case "boolean":
      return JSON.stringify(value);
  }
  if (value instanceof Uint8Array) return JSON.stringify(bytesToHex(value));
  if (Array.isArray(value)) return "[" + value.map(stringify).join(",") + "]";
  const parts: string[] = [];
  for (const [key, item] of Object.entries(value as object)) {
    if (item !== undefined) parts.push(JSON.stringify(key) + ":" + stringify(item));
  }
  return "{" + parts.join(",") + "}";
}
