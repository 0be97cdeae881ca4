// Validate an AsyncAPI document read from stdin with @asyncapi/parser; print diagnostics as JSON.
// Exit code: 0 when there is no error-severity diagnostic, 1 otherwise, 2 on a usage or parse failure.
"use strict";

const { Parser } = require("@asyncapi/parser");

async function main() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  const source = Buffer.concat(chunks).toString("utf8");
  const parser = new Parser();
  const { document, diagnostics } = await parser.parse(source);
  const report = diagnostics.map((d) => ({
    severity: ["error", "warning", "info", "hint"][d.severity] ?? String(d.severity),
    code: d.code,
    message: d.message,
    path: (d.path || []).join("."),
  }));
  const errors = report.filter((d) => d.severity === "error");
  process.stdout.write(JSON.stringify({ parsed: Boolean(document), errors: errors.length, diagnostics: report }) + "\n");
  process.exit(errors.length === 0 && document ? 0 : 1);
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(2);
});
