/**
 * Certificates for the control-plane harness, made with the `openssl` CLI: a serving CA and the
 * kube-apiserver serving certificate, a separate client CA (what `--client-ca-file` trusts) and
 * client certificates for arbitrary users, and the service-account signing key.
 *
 * @packageDocumentation
 */
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

/** Validity of every certificate made here, in days (test runs are short-lived). */
const DAYS = "7";

/** Runs `openssl` with `args` in `cwd`, turning a failure into an error that carries its stderr. */
async function openssl(cwd: string, args: string[]): Promise<void> {
  try {
    await execFileAsync("openssl", args, { cwd, timeout: 30_000 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === "ENOENT") throw new Error("openssl is not on PATH; the control-plane harness needs it");
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
  }
}

/** Escapes a value for an `openssl -subj` distinguished name (`/`, `+`, `=`, `\` are special). */
function dnValue(value: string): string {
  return value.replace(/[\\/+=]/g, (c) => `\\${c}`);
}

/** File names (relative to the PKI directory) of what {@link createPki} makes. */
export interface PkiFiles {
  /** CA that signed the serving certificate; clients verify the apiserver against it. */
  readonly servingCaCert: string;
  /** kube-apiserver serving certificate (SAN `IP:127.0.0.1`, `DNS:localhost`). */
  readonly servingCert: string;
  /** Key of {@link PkiFiles.servingCert}. */
  readonly servingKey: string;
  /** CA that the apiserver trusts for client certificates (`--client-ca-file`). */
  readonly clientCaCert: string;
  /** Key of {@link PkiFiles.clientCaCert}; used to mint client identities. */
  readonly clientCaKey: string;
  /** RSA key used both to sign and to verify service-account tokens. */
  readonly serviceAccountKey: string;
}

/**
 * Creates the serving CA and certificate, the client CA and the service-account key in `dir`.
 *
 * @param dir - an existing, private directory.
 * @returns absolute paths of the files.
 */
export async function createPki(dir: string): Promise<PkiFiles> {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  const caExt = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"];
  await Promise.all([
    openssl(dir, ["req", "-x509", ...ec, "-days", DAYS, "-subj", "/CN=ocm-test-serving-ca", ...caExt,
      "-keyout", "serving-ca.key", "-out", "serving-ca.crt"]),
    openssl(dir, ["req", "-x509", ...ec, "-days", DAYS, "-subj", "/CN=ocm-test-client-ca", ...caExt,
      "-keyout", "client-ca.key", "-out", "client-ca.crt"]),
    openssl(dir, ["req", ...ec, "-subj", "/CN=kube-apiserver", "-keyout", "apiserver.key", "-out", "apiserver.csr"]),
    openssl(dir, ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "sa.key"]),
  ]);
  await writeFile(
    join(dir, "apiserver.ext"),
    "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n",
  );
  await openssl(dir, ["x509", "-req", "-in", "apiserver.csr", "-CA", "serving-ca.crt", "-CAkey", "serving-ca.key",
    "-CAcreateserial", "-days", DAYS, "-extfile", "apiserver.ext", "-out", "apiserver.crt"]);
  return {
    servingCaCert: join(dir, "serving-ca.crt"),
    servingCert: join(dir, "apiserver.crt"),
    servingKey: join(dir, "apiserver.key"),
    clientCaCert: join(dir, "client-ca.crt"),
    clientCaKey: join(dir, "client-ca.key"),
    serviceAccountKey: join(dir, "sa.key"),
  };
}

/** A client certificate and key in PEM form, plus where they were written. */
export interface ClientCert {
  /** PEM certificate (CN = user, one O per group), signed by the client CA. */
  readonly certPem: string;
  /** PEM private key (EC P-256, PKCS#8). */
  readonly keyPem: string;
  /** Path of the certificate file. */
  readonly certFile: string;
  /** Path of the key file. */
  readonly keyFile: string;
}

/**
 * Makes a client certificate for `user` in `groups`, signed by the client CA in `pki`, as the files
 * `<dir>/<base>.crt` and `<dir>/<base>.key`.
 */
export async function signClientCert(
  pki: PkiFiles,
  dir: string,
  base: string,
  user: string,
  groups: readonly string[],
): Promise<ClientCert> {
  if (user.length === 0) throw new Error("a client identity needs a non-empty user name");
  const subj = `/CN=${dnValue(user)}${groups.map((g) => `/O=${dnValue(g)}`).join("")}`;
  const keyFile = join(dir, `${base}.key`);
  const certFile = join(dir, `${base}.crt`);
  await openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-subj", subj, "-keyout", keyFile, "-out", `${base}.csr`]);
  await writeFile(join(dir, `${base}.ext`), "extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n");
  await openssl(dir, ["x509", "-req", "-in", `${base}.csr`, "-CA", pki.clientCaCert, "-CAkey", pki.clientCaKey,
    "-set_serial", `0x${randomSerial()}`, "-days", DAYS, "-extfile", `${base}.ext`, "-out", certFile]);
  const [certPem, keyPem] = await Promise.all([readFile(certFile, "utf8"), readFile(keyFile, "utf8")]);
  return { certPem, keyPem, certFile, keyFile };
}

/** A random positive 63-bit serial number in hex (concurrent signing must not share serial files). */
function randomSerial(): string {
  const bytes = randomBytes(8);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x10;
  return bytes.toString("hex");
}
