#!/usr/bin/env node
// Counts the public surface of each published package: the names a user can
// import from each entry point listed in the package's "exports" map (the
// "./package.json" and bin entries are not modules with names). It reads the
// entry points' TypeScript sources (the "source" condition) through the
// TypeScript compiler, so `export *` chains and type-only exports are
// resolved exactly as a user's compiler would, without needing a build.
//
//   node scripts/count-exports.mjs          table per package and entry point
//   node scripts/count-exports.mjs --names  also list every name
//   node scripts/count-exports.mjs --json   machine-readable
//
// A name is a "value" if it exists at runtime (function, class, const,
// namespace object), otherwise a "type" (interface, type alias). A class or an
// enum counts once, as a value.
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const args = new Set(process.argv.slice(2));

const packageDirs = ["proto", ...readdirSync(join(root, "packages")).map((d) => join("packages", d))].filter((d) =>
  existsSync(join(root, d, "package.json")),
);

const entries = []; // { pkg, subpath, file }
for (const dir of packageDirs) {
  const manifest = JSON.parse(readFileSync(join(root, dir, "package.json"), "utf8"));
  if (manifest.private || !manifest.exports) continue;
  for (const [subpath, target] of Object.entries(manifest.exports)) {
    const source = typeof target === "object" ? target.source : undefined;
    if (!source || !source.endsWith(".ts")) continue; // package.json, bin
    entries.push({ pkg: manifest.name, subpath, file: join(root, dir, source) });
  }
}

const program = ts.createProgram(
  entries.map((e) => e.file),
  {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    customConditions: ["source"],
    allowImportingTsExtensions: false,
    skipLibCheck: true,
    noEmit: true,
    types: ["node"],
  },
);
const checker = program.getTypeChecker();

function classify(symbol) {
  const target = symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol;
  return target.flags & ts.SymbolFlags.Value ? "value" : "type";
}

const results = entries.map((entry) => {
  const sourceFile = program.getSourceFile(entry.file);
  if (!sourceFile) throw new Error(`cannot read ${entry.file}`);
  const moduleSymbol = checker.getSymbolAtLocation(sourceFile);
  const names = moduleSymbol ? checker.getExportsOfModule(moduleSymbol) : [];
  const values = [];
  const types = [];
  for (const s of names) (classify(s) === "value" ? values : types).push(s.getName());
  values.sort();
  types.sort();
  return { ...entry, values, types };
});

if (args.has("--json")) {
  const out = {};
  for (const r of results) {
    out[r.pkg] ??= {};
    out[r.pkg][r.subpath] = { values: r.values, types: r.types };
  }
  console.log(JSON.stringify(out, null, 2));
} else {
  const rows = [];
  const totals = new Map();
  for (const r of results) {
    rows.push([r.pkg, r.subpath, r.values.length, r.types.length, r.values.length + r.types.length]);
    const t = totals.get(r.pkg) ?? [0, 0];
    totals.set(r.pkg, [t[0] + r.values.length, t[1] + r.types.length]);
  }
  console.log("package\tentry\tvalues\ttypes\ttotal");
  for (const row of rows) console.log(row.join("\t"));
  console.log("\npackage\tvalues\ttypes\ttotal (all entry points)");
  let all = 0;
  for (const [pkg, [v, t]] of totals) {
    console.log(`${pkg}\t${v}\t${t}\t${v + t}`);
    all += v + t;
  }
  console.log(`all\t\t\t${all}`);
  if (args.has("--names")) {
    for (const r of results) {
      console.log(`\n${r.pkg} ${r.subpath}\n  values: ${r.values.join(", ")}\n  types: ${r.types.join(", ")}`);
    }
  }
}
