import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { resolveServeConfig } from "./cli.js";
import { ConfigError, applyConfig, defaultConfig, loadConfigFile } from "./config.js";
import { describeDatabase, parseDatabaseUrl, type ExternalDatabaseConfig } from "./database-config.js";
import { postgresOptions } from "./maestro-database.js";

const dir = mkdtempSync(join(tmpdir(), "conductor-dbconfig-"));
function file(text: string): string {
  const path = join(dir, `${Math.random().toString(36).slice(2)}`);
  writeFileSync(path, text);
  return path;
}

const configError = (run: () => unknown) => {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected a ConfigError");
};

describe("db_config (Maestro's DatabaseConfig keys)", () => {
  it("reads the reference keys, the port as a number or a numeric string", async () => {
    const config = await loadConfigFile(file(`
db_config:
  host: db.example.com
  port: "55432"
  name: maestro
  username: maestro
  password: 12345      # yaml.v2 reads a number into Maestro's string field
  sslmode: verify-full
`));
    expect(config.database).toEqual({
      kind: "external", origin: "db_config", host: "db.example.com", port: 55432, name: "maestro",
      username: "maestro", password: "12345", sslmode: "verify-full",
    });
    expect(applyConfig(defaultConfig(), { db_config: { host: "::1", port: 5433, name: "m", username: "u" } }).database)
      .toMatchObject({ host: "::1", port: 5433, password: "", sslmode: "disable" });
  });

  it("defaults to the embedded database in ./.data/pg when db_config is absent, null or empty", () => {
    expect(defaultConfig().database).toEqual({ kind: "embedded", dataDir: ".data/pg" });
    expect(applyConfig(defaultConfig(), { db_config: null }).database.kind).toBe("embedded");
    expect(applyConfig(defaultConfig(), { db_config: {} }).database.kind).toBe("embedded");
  });

  it.each([
    [{ port: 5432, name: "m", username: "u" }, /db_config.host is required/],
    [{ host: "h", username: "u" }, /db_config.name is required/],
    [{ host: "h", name: "m" }, /db_config.username is required/],
    [{ host: "h", name: "m", username: "u", port: "http" }, /db_config.port must be an integer from 1 to 65535/],
    [{ host: "h", name: "m", username: "u", port: 0 }, /db_config.port must be an integer from 1/],
    [{ host: "h", name: "m", username: "u", port: 70000 }, /db_config.port/],
    [{ host: "h", name: "m", username: "u", port: "5432 " }, /db_config.port/],
    [{ host: "h", name: "m", username: "u", port: 5432.5 }, /db_config.port/],
    [{ host: "h", name: "m", username: "u", sslmode: "on" }, /db_config.sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full/],
    [{ host: "h", name: "m", username: "u", sslmode: true }, /db_config.sslmode/],
    [{ host: "a,b", name: "m", username: "u" }, /db_config.host must be a host name or IP address/],
    [{ host: "/var/run/postgresql", name: "m", username: "u" }, /db_config.host must be a host name/],
    [{ host: "h; rm -rf /", name: "m", username: "u" }, /db_config.host must be a host name/],
    [{ host: "h", name: "m\u0000x", username: "u" }, /db_config.name must not contain control characters/],
    [{ host: "h", name: "m", username: "u\nadmin" }, /db_config.username must not contain control characters/],
    [{ host: "h", name: "m", username: "u", password: "x".repeat(2000) }, /db_config.password is longer than 1024 bytes/],
    [{ host: "h", name: ["m"], username: "u" }, /db_config.name must be a non-empty string/],
    [{ host: "h", name: "m", username: "u", password: { a: 1 } }, /db_config.password must be a string/],
    [{ host: "h", name: "m", username: "u", password: "p", password_file: "/f" }, /password and db_config.password_file exclude each other/],
    [{ host: "h", name: "m", username: "u", password_file: "/f", passwordfile: "/g" }, /same setting/],
  ])("refuses %j naming the key", (db, message) => {
    expect(configError(() => applyConfig(defaultConfig(), { db_config: db }))).toMatch(message);
  });

  it("refuses a db_config that is not a mapping", async () => {
    const err = await loadConfigFile(file("db_config: postgres://u@h/m")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/db_config must be a mapping/);
  });

  it("changes nothing when db_config is invalid after valid grpc_config keys", () => {
    const base = defaultConfig();
    expect(() => applyConfig(base, { grpc_config: { server_bind_port: "1" }, db_config: { host: "h", name: "m", username: "u", port: -1 } })).toThrow(/db_config.port/);
    expect(base).toEqual(defaultConfig());
  });

  it("reads password_file (and Maestro's yaml.v2 spelling passwordfile) at start-up, trimmed", async () => {
    const pw = file("  s3cret\n");
    for (const key of ["password_file", "passwordfile"]) {
      const config = file(`db_config:\n  host: h\n  name: m\n  username: u\n  ${key}: ${pw}\n`);
      const { config: resolved } = await resolveServeConfig(["--config", config], {});
      expect(resolved.database).toMatchObject({ kind: "external", password: "s3cret" });
    }
    const missing = file(`db_config:\n  host: h\n  name: m\n  username: u\n  password_file: ${join(dir, "nope")}\n`);
    const err = await resolveServeConfig(["--config", missing], {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/db_config.password_file: cannot read/);
  });
});

describe("DATABASE_URL", () => {
  it("parses user, percent-encoded password, host, port, database and sslmode", () => {
    expect(parseDatabaseUrl("postgres://maestro:p%40ss%3Aw0rd@db.example.com:6543/maestro?sslmode=require")).toEqual({
      kind: "external", origin: "DATABASE_URL", host: "db.example.com", port: 6543, name: "maestro",
      username: "maestro", password: "p@ss:w0rd", sslmode: "require",
    });
    expect(parseDatabaseUrl("postgresql://u@[::1]/m")).toMatchObject({ host: "::1", port: 5432, password: "", sslmode: "disable" });
  });

  it.each([
    ["not a url", /DATABASE_URL is not a URL/],
    ["http://u:p@h/m", /must start with postgres:\/\/ or postgresql:\/\//],
    ["postgres://h:5432/m", /must name the user/],
    ["postgres://u@h:5432", /must name one database/],
    ["postgres://u@h:5432/", /must name one database/],
    ["postgres://u@h/m?sslmode=sometimes", /DATABASE_URL sslmode must be one of/],
    ["postgres://u@h/m?sslmod=require", /unsupported parameter "sslmod"/],
    ["postgres://u@h/m?options=-c%20search_path%3Devil", /unsupported parameter "options"/],
    ["postgres://u@h:0/m", /DATABASE_URL port must be an integer from 1/],
    ["postgres://u:%E0%A4%A@h/m", /password is not valid percent-encoding/],
    ["postgres://u@h/m%00x", /database name must not contain control characters/],
  ])("refuses %s", (url, message) => {
    expect(configError(() => parseDatabaseUrl(url))).toMatch(message);
  });

  it("overrides db_config; an empty DATABASE_URL counts as unset", async () => {
    const config = file("db_config:\n  host: from-file\n  name: m\n  username: u\n");
    const { config: fromUrl } = await resolveServeConfig(["--config", config], { DATABASE_URL: "postgres://u@from-env/m" });
    expect(fromUrl.database).toMatchObject({ origin: "DATABASE_URL", host: "from-env" });
    const { config: fromFile } = await resolveServeConfig(["--config", config], { DATABASE_URL: "" });
    expect(fromFile.database).toMatchObject({ origin: "db_config", host: "from-file" });
  });
});

describe("--data-dir", () => {
  it("sets the embedded database's directory", async () => {
    expect((await resolveServeConfig([], {})).config.database).toEqual({ kind: "embedded", dataDir: ".data/pg" });
    expect((await resolveServeConfig(["--data-dir", "/srv/pg"], {})).config.database).toEqual({ kind: "embedded", dataDir: "/srv/pg" });
  });

  it("is ignored (and reported) with an external database, and refused when empty", async () => {
    const withUrl = await resolveServeConfig(["--data-dir", "/srv/pg"], { DATABASE_URL: "postgres://u@h/m" });
    expect(withUrl.config.database).toMatchObject({ kind: "external", host: "h" });
    expect(withUrl.ignored).toEqual(["--data-dir /srv/pg (DATABASE_URL selects an external database)"]);
    const empty = await resolveServeConfig(["--data-dir", ""], {}).catch((e: unknown) => e);
    expect(empty).toBeInstanceOf(ConfigError);
  });
});

describe("the postgres.js client options", () => {
  const db = (sslmode: ExternalDatabaseConfig["sslmode"]): ExternalDatabaseConfig =>
    ({ kind: "external", origin: "db_config", host: "::1", port: 5432, name: "m", username: "u", password: "secret", sslmode });

  it("name the application, bound connects, keep the host whole and map sslmode", () => {
    const options = postgresOptions(db("disable"));
    expect(options).toMatchObject({ host: ["::1"], port: [5432], database: "m", username: "u", max: 20, connect_timeout: 10, ssl: false });
    expect(options.connection).toEqual({ application_name: "ocm-conductor" });
    expect(options.types).toBeUndefined();
    expect(options.transform).toBeUndefined();
    expect(postgresOptions(db("require")).ssl).toBe("require");
    expect(postgresOptions(db("prefer")).ssl).toBe("prefer");
    expect(postgresOptions(db("allow")).ssl).toBe("prefer");
    expect(postgresOptions(db("verify-full")).ssl).toBe("verify-full");
    expect(postgresOptions(db("verify-ca")).ssl).toMatchObject({ checkServerIdentity: expect.any(Function) });
  });

  it("never puts the password in the description used by logs and errors", () => {
    expect(describeDatabase(db("require"))).toBe("postgres://u@[::1]:5432/m?sslmode=require");
  });
});
