import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A CA made for a test: certificate and key files. */
export interface TestCa {
  cert: string;
  key: string;
}

const openssl = (dir: string, ...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });

/** Makes a self-signed EC CA in `dir`. */
export function makeCa(dir: string, name: string): TestCa {
  openssl(dir, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-keyout", `${name}.key`, "-out", `${name}.crt`);
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Options of {@link issue}. */
export interface IssueOptions {
  /** `/CN=…/O=…` */
  subject: string;
  /** `client` (clientAuth) or `server` (serverAuth, SAN 127.0.0.1 and localhost). */
  usage: "client" | "server";
  /** Validity window as `YYYYMMDDHHMMSSZ`; default: from one minute ago for one day. */
  startDate?: string;
  endDate?: string;
}

/** Issues a certificate from `ca` with `openssl ca` (which can back-date); returns the PEM file paths. */
export function issue(dir: string, ca: TestCa, name: string, options: IssueOptions): { cert: string; key: string } {
  const db = join(dir, `${name}.index`);
  writeFileSync(db, "");
  writeFileSync(join(dir, `${name}.serial`), `${Date.now().toString(16).padStart(16, "0")}\n`);
  writeFileSync(join(dir, `${name}.cnf`), [
    "[ca]", "default_ca = ca_default", "[ca_default]", `database = ${db}`, `new_certs_dir = ${dir}`, `serial = ${join(dir, `${name}.serial`)}`,
    "default_md = sha256", "policy = policy_any", "unique_subject = no", "[policy_any]", "commonName = optional", "organizationName = optional", "",
  ].join("\n"));
  writeFileSync(join(dir, `${name}.ext`), options.usage === "client"
    ? "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n"
    : "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n");
  openssl(dir, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", options.subject, "-keyout", `${name}.key`, "-out", `${name}.csr`);
  const fmt = (d: Date) => d.toISOString().replace(/[-:T]/g, "").slice(0, 14) + "Z";
  const start = options.startDate ?? fmt(new Date(Date.now() - 60_000));
  const end = options.endDate ?? fmt(new Date(Date.now() + 86_400_000));
  openssl(dir, "ca", "-batch", "-config", `${name}.cnf`, "-cert", ca.cert, "-keyfile", ca.key, "-in", `${name}.csr`, "-out", `${name}.crt`,
    "-startdate", start, "-enddate", end, "-extfile", `${name}.ext`, "-notext", "-preserveDN");
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Reads a file as a Buffer. */
export const pemOf = (path: string) => readFileSync(path);
