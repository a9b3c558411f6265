import type { StreamSnapshot } from "@ocm-conductor/router";

/** The `/debug/subscribers` HTML view: one row per live stream, refreshed every 5 s. */
export function subscribersPage(streams: StreamSnapshot[]): string {
  const sorted = [...streams].sort((a, b) => a.clusterName.localeCompare(b.clusterName) || a.dataType.localeCompare(b.dataType));
  const clusters = new Set(sorted.map((s) => s.clusterName)).size;
  const rows = sorted
    .map((s) => `<tr><td>${escape(s.clusterName)}</td><td>${escape(s.dataType)}</td><td>${s.queued}</td><td>${s.sent}</td><td>${escape(s.lastHeartbeat ?? "—")}</td><td>${escape(s.since)}</td><td><code>${escape(s.id)}</code></td></tr>`)
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="5"><title>conductor: subscribers</title>
<style>body{font:14px system-ui,sans-serif;margin:1.5em}table{border-collapse:collapse}td,th{padding:.25em .75em;border-bottom:1px solid #ddd;text-align:left}th{background:#f4f4f4}</style>
</head><body>
<h1>Subscribers</h1>
<p>${sorted.length} stream(s) from ${clusters} cluster(s). JSON: <a href="?format=json">?format=json</a></p>
<table><thead><tr><th>cluster</th><th>data type</th><th>queued</th><th>sent</th><th>last heartbeat</th><th>since</th><th>subscription id</th></tr></thead>
<tbody>
${rows}
</tbody></table>
</body></html>
`;
}

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
