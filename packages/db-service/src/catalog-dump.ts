import type { Sql } from "postgres";

/**
 * A normalised, version-independent dump of the current schema's tables, columns, indexes and
 * constraints, one line per item — the comparison `pg_dump --schema-only` would give, without
 * needing a pg_dump that matches the server's major version.
 */
export async function catalogDump(sql: Sql): Promise<string> {
  const columns = (await sql`
    select table_name, ordinal_position, column_name, data_type, character_maximum_length, is_nullable, column_default
    from information_schema.columns where table_schema = current_schema()
    order by table_name, ordinal_position`) as unknown as Array<Record<string, unknown>>;
  const indexes = (await sql`
    select indexname, indexdef from pg_indexes where schemaname = current_schema() order by indexname`) as unknown as Array<Record<string, string>>;
  const constraints = (await sql`
    select c.conrelid::regclass::text as tbl, c.conname, pg_get_constraintdef(c.oid) as def
    from pg_constraint c where c.connamespace = current_schema()::regnamespace order by tbl, c.conname`) as unknown as Array<Record<string, string>>;
  const lines = [
    ...columns.map((c) => `column ${String(c.table_name)}.${String(c.ordinal_position)} ${String(c.column_name)} ${String(c.data_type)}`
      + `${c.character_maximum_length === null ? "" : `(${String(c.character_maximum_length)})`} nullable=${String(c.is_nullable)}`
      + ` default=${String(c.column_default)}`),
    ...indexes.map((i) => `index ${i.indexname}: ${(i.indexdef ?? "").replace(/ ON [\w.]+\./, " ON ")}`),
    ...constraints.map((c) => `constraint ${c.tbl}.${c.conname}: ${c.def}`),
  ];
  return `${lines.join("\n")}\n`;
}
