// Validate an AsyncAPI document with the AsyncAPI initiative's parser (@asyncapi/parser).
// Usage: node validate.mjs FILE  -> prints the diagnostics as JSON; exit 1 if any is an error.
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

const file = process.argv[2];
const text = await readFile(file, "utf8");
const parser = new Parser();
const { document, diagnostics } = await parser.parse(text);
const out = diagnostics.map((d) => ({
  severity: ["error", "warning", "info", "hint"][d.severity] ?? String(d.severity),
  code: d.code,
  message: d.message,
  path: d.path.join("/"),
}));
const channels = document ? document.channels().all().map((c) => c.address()) : [];
console.log(JSON.stringify({ valid: !!document && !out.some((d) => d.severity === "error"), channels, diagnostics: out }));
process.exit(document && !out.some((d) => d.severity === "error") ? 0 : 1);
