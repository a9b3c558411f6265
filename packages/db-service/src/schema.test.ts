import { readFileSync } from "node:fs";
import postgres, { type Sql } from "postgres";
import { createDatabase, startPostgres, type PostgresServer } from "@ocm-conductor/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { catalogDump } from "./catalog-dump.js";
import { MAESTRO_MIGRATIONS, SchemaError, ensureSchema } from "./schema.js";

const fixture = (name: string) => readFileSync(new URL(`../fixtures/${name}`, import.meta.url), "utf8");

let pg: PostgresServer;
const clients: Sql[] = [];
let counter = 0;

async function freshDatabase(): Promise<Sql> {
  const url = await createDatabase(pg, `schema_${++counter}`);
  const sql = postgres(url, { max: 4, onnotice: () => {} });
  clients.push(sql);
  return sql;
}

beforeAll(async () => {
  pg = await startPostgres();
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end({ timeout: 0 })));
  await pg?.stop();
});

async function refusal(sql: Sql): Promise<SchemaError> {
  const err = await ensureSchema(sql).then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(SchemaError);
  return err as SchemaError;
}

describe("Maestro's schema (maestro-db.md §1)", () => {
  it("creates exactly the reference schema in an empty database, migrations included", async () => {
    const sql = await freshDatabase();
    expect(await ensureSchema(sql)).toBe("created");
    expect(await catalogDump(sql)).toBe(fixture("maestro-schema.catalog.txt"));
    const ids = (await sql`select id from migrations order by id`).map((r) => r.id as string);
    expect(ids).toEqual([...MAESTRO_MIGRATIONS].sort());
  });

  it("matches what the reference DDL itself creates (the fixture is that DDL's catalog)", async () => {
    const sql = await freshDatabase();
    await sql.unsafe(fixture("maestro-schema.sql"));
    expect(await catalogDump(sql)).toBe(fixture("maestro-schema.catalog.txt"));
    expect(await ensureSchema(sql)).toBe("current"); // a Maestro-migrated database is accepted as is
  });

  it("is idempotent and safe when two conductors start at once", async () => {
    const sql = await freshDatabase();
    const results = await Promise.all([ensureSchema(sql), ensureSchema(sql)]);
    expect(results.sort()).toEqual(["created", "current"]);
    expect(await ensureSchema(sql)).toBe("current");
  });

  it("refuses a database migrated by an older Maestro, and changes nothing", async () => {
    const sql = await freshDatabase();
    await ensureSchema(sql);
    await sql`delete from migrations where id = ${MAESTRO_MIGRATIONS[9]}`;
    const before = await catalogDump(sql);
    const err = await refusal(sql);
    expect(err.code).toBe("older-schema");
    expect(err.message).toMatch(/202412181141.*maestro migration/);
    expect(await catalogDump(sql)).toBe(before);
  });

  it("refuses a database with migrations it does not know (a newer Maestro)", async () => {
    const sql = await freshDatabase();
    await ensureSchema(sql);
    await sql`insert into migrations (id) values ('209901010000')`;
    expect((await refusal(sql)).code).toBe("unknown-migrations");
  });

  it("refuses Maestro tables without gormigrate's bookkeeping", async () => {
    const sql = await freshDatabase();
    await sql`create table resources (id text primary key)`;
    const err = await refusal(sql);
    expect(err.code).toBe("unmanaged-tables");
    expect((await sql`select to_regclass('events') is null as absent`)[0]?.absent).toBe(true);
  });
});
