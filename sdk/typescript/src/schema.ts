/** A database's schema as the client needs it (`GET /v1/database/{name}/schema`). */

import type { TypeDescription } from "./values.js";

export type Column = TypeDescription & { name: string; auto_inc?: boolean };

export interface TableSchema {
  name: string;
  columns: Column[];
  primary_key?: string[];
  public?: boolean;
  indexes?: Array<{ name: string; columns: string[]; unique?: boolean }>;
}

export interface ReducerSchema {
  name: string;
  params: Array<TypeDescription & { name: string; optional?: boolean }>;
  returns: TypeDescription | null;
  kind?: string;
}

export interface DatabaseSchema {
  database: string;
  tables: TableSchema[];
  reducers: ReducerSchema[];
  [more: string]: unknown;
}
