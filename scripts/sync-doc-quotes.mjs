#!/usr/bin/env node
// Rewrites the quoted code blocks of markdown files from the files they quote:
// a block preceded by `<!-- path/from/repo/root -->` (or, in a package's
// README, `<!-- src/... -->` relative to the package) is replaced by that
// file's text. The docs tests check the same blocks; run this after changing
// a quoted file: node scripts/sync-doc-quotes.mjs docs/*.md packages/*/README.md
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";

const QUOTE = /<!-- ([\w./-]+) -->\n(\n?)```(\w+)\n[\s\S]*?```/g;
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  const base = file.startsWith("packages/") ? dirname(file) : ".";
  const next = text.replace(QUOTE, (_, path, blank, lang) => {
    const quoted = readFileSync(
      path.startsWith("packages/") || path.startsWith("scripts/") ? path : join(base, path),
      "utf8",
    );
    return `<!-- ${path} -->\n${blank}\`\`\`${lang}\n${quoted}\`\`\``;
  });
  if (next !== text) {
    writeFileSync(file, next);
    console.log(`updated ${file}`);
  }
}
