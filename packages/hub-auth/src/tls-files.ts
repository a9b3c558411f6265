import { createHash } from "node:crypto";
import { watch, type FSWatcher } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname } from "node:path";
import { createSecureContext } from "node:tls";
import { silentLogger, type Logger } from "@ocm-conductor/router";

/** The serving certificate files (`tls_cert_file`, `tls_key_file`) and the client CA bundle (`client_ca_file`). */
export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile?: string;
}

/** The PEM contents of {@link TlsFiles}. */
export interface TlsFilesMaterial {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
}

/** A TLS file that cannot be read, or files that do not make a usable TLS context. */
export class TlsFilesError extends Error {}

/**
 * Reads the TLS files and checks they make a TLS context (PEM parses, key matches certificate,
 * CA bundle parses).
 *
 * @throws TlsFilesError naming the file or the problem.
 */
export async function readTlsFiles(files: TlsFiles): Promise<TlsFilesMaterial> {
  const read = async (path: string, what: string) => {
    try {
      return await readFile(path);
    } catch (err) {
      throw new TlsFilesError(`${what}: cannot read ${path}: ${(err as Error).message}`);
    }
  };
  const [cert, key, ca] = await Promise.all([
    read(files.certFile, "tls_cert_file"),
    read(files.keyFile, "tls_key_file"),
    files.caFile === undefined ? undefined : read(files.caFile, "client_ca_file"),
  ]);
  const material: TlsFilesMaterial = ca === undefined ? { cert, key } : { cert, key, ca };
  try {
    createSecureContext({ cert, key, ...(ca !== undefined && { ca }) });
  } catch (err) {
    throw new TlsFilesError(`the TLS files do not make a usable TLS context (${files.certFile}, ${files.keyFile}${files.caFile === undefined ? "" : `, ${files.caFile}`}): ${(err as Error).message}`);
  }
  return material;
}

/** Options of {@link watchTlsFiles}. */
export interface TlsWatchOptions {
  /** What is being served now; changes are detected against it. */
  current: TlsFilesMaterial;
  /** Called with new, validated material (e.g. to call `server.setSecureContext`). */
  onChange(material: TlsFilesMaterial): void;
  /** Period of the stat-independent content check, the fallback when file events are missed. Default 60 s. */
  intervalMs?: number;
  /** Wait after a file event before reading, so a multi-file rotation is read once. Default 200 ms. */
  settleMs?: number;
  logger?: Logger;
}

/**
 * Watches the TLS files and calls `onChange` when their contents change and still make a usable
 * TLS context. It watches the files' directories (so atomic renames and Kubernetes secret volume
 * symlink swaps are seen) and re-reads them every `intervalMs` as a fallback. A bad new file is
 * logged as an error and the current material stays in use. Returns a function that stops watching.
 */
export function watchTlsFiles(files: TlsFiles, options: TlsWatchOptions): () => void {
  const logger = options.logger ?? silentLogger;
  const digest = (m: TlsFilesMaterial) => createHash("sha256").update(m.cert).update("\0").update(m.key).update("\0").update(m.ca ?? "").digest("hex");
  let current = digest(options.current);
  let lastFailure: string | undefined;
  let running = false;
  let again = false;
  let stopped = false;
  let settle: NodeJS.Timeout | undefined;

  const check = async (): Promise<void> => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      do {
        again = false;
        let material: TlsFilesMaterial;
        try {
          material = await readTlsFiles(files);
        } catch (err) {
          const message = (err as Error).message;
          if (message !== lastFailure) logger.error("TLS files changed but cannot be used; still serving the previous certificate", { error: message });
          lastFailure = message;
          continue;
        }
        lastFailure = undefined;
        const next = digest(material);
        if (next === current || stopped) continue;
        current = next;
        options.onChange(material);
        logger.info("TLS files reloaded", { certFile: files.certFile, keyFile: files.keyFile, ...(files.caFile !== undefined && { caFile: files.caFile }) });
      } while (again && !stopped);
    } finally {
      running = false;
    }
  };
  const soon = () => {
    if (settle !== undefined) clearTimeout(settle);
    settle = setTimeout(() => void check(), options.settleMs ?? 200);
    settle.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const dir of new Set([files.certFile, files.keyFile, ...(files.caFile === undefined ? [] : [files.caFile])].map((f) => dirname(f)))) {
    try {
      const w = watch(dir, { persistent: false }, soon);
      w.on("error", (err) => logger.warn("TLS file watch failed; the periodic check continues", { dir, error: err.message }));
      watchers.push(w);
    } catch (err) {
      logger.warn("cannot watch the TLS files' directory; relying on the periodic check", { dir, error: (err as Error).message });
    }
  }
  const poll = setInterval(() => void check(), options.intervalMs ?? 60_000);
  poll.unref();
  return () => {
    stopped = true;
    clearInterval(poll);
    if (settle !== undefined) clearTimeout(settle);
    for (const w of watchers) w.close();
  };
}
