#!/usr/bin/env node
// Turns bench-results.json into the benchmark documents:
//
//   docs/bench-report.md   every result as a markdown table, and the
//                          cross-backend results side by side per tree
//   docs/bench-chart.svg   grouped bars: ingest and getRecursive per backend
//                          on the generated tree, the bare baseline beside them
//   docs/backends.md       the "measured: …" columns of the table between
//                          <!-- bench:begin --> and <!-- bench:end --> (the
//                          other columns are written by hand and kept)
//
// Usage: node scripts/report/make-report.mjs [--results FILE] [--docs DIR] [--png FILE]
//   --results  default $CASTORE_BENCH_RESULTS, else bench-results.json at the root
//   --docs     where the three documents are (default docs/ at the root)
//   --png      also render the chart to FILE with rsvg-convert (to look at it)
// Run by `pnpm bench` after the benchmarks, or alone by `pnpm bench:report`.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as prettier from "prettier";

const root = new URL("../..", import.meta.url).pathname;
const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const resultsFile = option("--results") ?? process.env.CASTORE_BENCH_RESULTS ?? join(root, "bench-results.json");
const pngFile = option("--png");
const docs = option("--docs") ?? join(root, "docs");

const BACKENDS = ["memory", "lmdb", "postgres", "s3", "grpc", "cache"];
const MACHINE_NOTE =
  "Numbers were taken on a shared 2-core machine while other engineers' builds and tests ran: " +
  "absolute rates swing by up to 2× between runs; the ratios, each against a baseline measured in the same run, are steadier.";

// ---- reading ----

/** @typedef {{ name: string, value: number, unit: string, baseline: number | null, ratio: number | null, notes?: string, run?: string }} BenchResult */

/** @returns {BenchResult[]} */
function readResults(file) {
  if (!existsSync(file)) throw new Error(`${file} not found: run \`pnpm bench\` first`);
  const parsed = JSON.parse(readFileSync(file, "utf8"));
  if (!Array.isArray(parsed)) throw new Error(`${file} is not a JSON array of results`);
  return parsed;
}

/**
 * Cross-backend results by backend and tree: `backends: <backend> <tree> <measure>`,
 * measure "ingest", "getRecursive" or "getRecursive (warm)".
 */
function crossBackend(results) {
  /** @type {Map<string, Map<string, Record<string, BenchResult>>>} tree → backend → measure → result */
  const byTree = new Map();
  for (const r of results) {
    const m = /^backends: (\S+) (\S+) (ingest|getRecursive(?: \(warm\))?)$/.exec(r.name);
    if (!m) continue;
    const [, backend, tree, measure] = m;
    if (!byTree.has(tree)) byTree.set(tree, new Map());
    const backends = byTree.get(tree);
    if (!backends.has(backend)) backends.set(backend, {});
    backends.get(backend)[measure] = r;
  }
  return byTree;
}

/** The generated-tree key of each backend: "100k-tree" where it ran, else its largest "<n>k-tree". */
function generatedTreeOf(byTree, backend) {
  const candidates = [...byTree.keys()]
    .filter((t) => /^\d+k?-tree$/.test(t) && byTree.get(t).has(backend))
    .sort((a, b) => treeSize(b) - treeSize(a));
  return candidates[0];
}

function treeSize(key) {
  const m = /^(\d+)(k?)-tree$/.exec(key);
  return m ? Number(m[1]) * (m[2] ? 1000 : 1) : 0;
}

const isRefused = (r) => r && r.value === 0 && /^refused/.test(r.notes ?? "");
const refusalCode = (r) =>
  /RESOURCE_EXHAUSTED|ResourceExhausted/i.test(r.notes ?? "") ? "RESOURCE_EXHAUSTED" : "refused";

// ---- formatting ----

function formatNumber(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "";
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString("en-US");
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toPrecision(3);
}

function formatRatio(r) {
  if (r === null || r === undefined) return "";
  return r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(2) : r.toPrecision(2);
}

/** 63 503 → "63.5k", 1 234 567 → "1.23M". */
function shortRate(v) {
  if (v >= 1e6) return `${(v / 1e6).toPrecision(3)}M`;
  if (v >= 1e4) return `${Math.round(v / 1e3)}k`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return String(Math.round(v));
}

const cell = (text) =>
  String(text ?? "")
    .replace(/\|/g, "\\|")
    .replace(/\n/g, " ");
const row = (cells) => `| ${cells.map(cell).join(" | ")} |`;
const unitShort = (u) => u.replace("directories/s", "dirs/s");

function rateCell(r) {
  if (!r) return "—";
  if (isRefused(r)) return `refused (${refusalCode(r)})`;
  return `${formatNumber(r.value)} ${unitShort(r.unit)}`;
}

function ratioCell(r) {
  if (!r || isRefused(r)) return "—";
  return `${formatRatio(r.ratio)}×`;
}

// ---- docs/bench-report.md ----

/** Which runs took the measures (BenchResult.run): the newest, and every row an earlier run left. */
function runsSummary(results) {
  const newest = results
    .map((r) => r.run)
    .filter(Boolean)
    .sort()
    .at(-1);
  if (!newest)
    return [`None of the ${results.length} measures names the run that took it (written before runs were stamped).`];
  const older = results.filter((r) => r.run !== newest);
  if (older.length === 0) return [`All ${results.length} measures are from one run, started ${newest}.`];
  return [
    `${results.length - older.length} of ${results.length} measures are from the run started ${newest}. ` +
      `These ${older.length} are from earlier runs (their benchmark was skipped or not run since):`,
    "",
    ...older.map((r) => `- ${r.name}: ${r.run ?? "a run before runs were stamped"}`),
  ];
}

function treeTitle(tree, backends) {
  const any = [...backends.values()].flatMap((m) => Object.values(m)).find((r) => r.notes);
  return any ? any.notes.split(";")[0] : tree;
}

function benchReport(results, byTree, written) {
  const lines = [];
  lines.push("# castore benchmark report", "");
  lines.push(
    "> **A snapshot of one real run.** The committed `bench-results.json` (repository root) holds the",
    "> measures of one whole `pnpm bench` run (each row names the run that measured it; rows left by an",
    "> earlier run are listed below), and this page is generated from it by",
    "> `scripts/report/make-report.mjs`, not typed by hand. `pnpm bench` runs every benchmark (all in",
    "> `packages/bench`) and then regenerates it; `pnpm bench:report` only regenerates it.",
    `> ${MACHINE_NOTE}`,
    "",
  );
  lines.push(`Results written ${written}; ${results.length} measures.`, "");
  lines.push(...runsSummary(results), "");
  lines.push("![ingest and getRecursive per backend](bench-chart.svg)", "");

  lines.push("## Backends side by side", "");
  lines.push(
    "Every backend opened by URL through `openDirectoryService(url)` (`packages/bench/src/cross-backend.ts`), each round on a",
    "fresh store, the best of the rounds kept. The ratio is against the bare `encodeDirectory` + BLAKE3 loop",
    "over the same directories in the same run: the cost of merely encoding and hashing what is stored.",
    "grpc is a `castore serve --store memory://` child process over loopback TCP; cache is",
    "`cache://?near=memory://&far=lmdb://…` (uploads go to far; its getRecursive is the first read, which",
    'copies the closure into near, and "warm" the second).',
    "",
    "A ratio is not bounded by 1: a read hashes the stored bytes and decodes them, which can cost less",
    "than encoding them. On the small trees (a round takes milliseconds) single rounds swing widely, so",
    "compare backends on the large trees first. s3 writes one object per directory (a few hundred PUTs/s",
    "on the local test server), so it runs a smaller generated tree and one round; its `getRecursive` is",
    "two GETs whatever the tree, and its ingest rate is the PUT rate.",
    "",
  );
  const order = [...byTree.keys()].sort((a, b) => treeOrder(a) - treeOrder(b) || a.localeCompare(b));
  for (const tree of order) {
    const backends = byTree.get(tree);
    const first = [...backends.values()].map((m) => m.ingest ?? m.getRecursive).find(Boolean);
    lines.push(`### ${tree}`, "");
    lines.push(
      `${treeTitle(tree, backends)}. Baseline: ${formatNumber(first?.baseline)} ${first ? unitShort(first.unit) : ""}.`,
      "",
    );
    lines.push(row(["backend", "ingest", "× baseline", "getRecursive", "× baseline"]));
    lines.push(row(["---", "---:", "---:", "---:", "---:"]));
    for (const backend of sortBackends([...backends.keys()])) {
      const m = backends.get(backend);
      lines.push(
        row([backend, rateCell(m.ingest), ratioCell(m.ingest), rateCell(m.getRecursive), ratioCell(m.getRecursive)]),
      );
      if (m["getRecursive (warm)"]) {
        const w = m["getRecursive (warm)"];
        lines.push(row([`${backend} (second read)`, "", "", rateCell(w), ratioCell(w)]));
      }
    }
    for (const [backend, m] of backends) {
      if (!isRefused(m.ingest)) continue;
      const both = isRefused(m.getRecursive);
      const why = m.ingest.notes.split(";")[0].replace(/^refused( by the server)?:\s*/, "");
      lines.push(
        "",
        `${backend} refused this tree${both ? " both ways: the upload, and getRecursive from a server whose store was filled directly" : ""}: ${why}.`,
      );
    }
    lines.push("");
  }

  lines.push("## Every result", "");
  lines.push("All entries of `bench-results.json`, grouped by the benchmark that wrote them (the name's prefix).", "");
  const groups = new Map();
  for (const r of results) {
    const prefix = r.name.includes(":") ? r.name.slice(0, r.name.indexOf(":")) : "other";
    if (!groups.has(prefix)) groups.set(prefix, []);
    groups.get(prefix).push(r);
  }
  for (const [prefix, entries] of [...groups.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    lines.push(`### ${prefix}`, "");
    lines.push(row(["measure", "value", "unit", "baseline", "ratio", "notes"]));
    lines.push(row(["---", "---:", "---", "---:", "---:", "---"]));
    for (const r of entries) {
      const value = isRefused(r) ? `refused (${refusalCode(r)})` : formatNumber(r.value);
      lines.push(
        row([
          r.name.slice(prefix.length + 1).trim(),
          value,
          r.unit,
          formatNumber(r.baseline),
          formatRatio(r.ratio),
          r.notes ?? "",
        ]),
      );
    }
    lines.push("");
  }
  return `${lines.join("\n")}`;
}

function treeOrder(key) {
  if (/-tree$/.test(key)) return 0 - treeSize(key) / 1e9;
  if (key.startsWith("wide")) return 1;
  if (key.startsWith("deep")) return 2;
  return 3;
}

function sortBackends(names) {
  return names.sort((a, b) => (BACKENDS.indexOf(a) + 1 || 99) - (BACKENDS.indexOf(b) + 1 || 99) || a.localeCompare(b));
}

// ---- docs/bench-chart.svg ----

function escapeXml(s) {
  return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** A "nice" axis maximum and step: 1, 2, 2.5 or 5 × 10^k, about 5 steps. */
function niceAxis(max) {
  const rough = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * magnitude).find((s) => s >= rough);
  return { step, max: Math.ceil(max / step) * step };
}

const roundsOf = (r) => Number(/best of (\d+) rounds?/.exec(r?.notes ?? "")?.[1] ?? NaN);

/** "best of 2 rounds", or "best of 2 rounds (s3: 1)" when some backends ran fewer. */
function roundsText(groups) {
  const counts = groups.filter((g) => !Number.isNaN(g.rounds));
  if (!counts.length) return "best round";
  const common = counts
    .map((g) => g.rounds)
    .sort((a, b) => counts.filter((g) => g.rounds === b).length - counts.filter((g) => g.rounds === a).length)[0];
  const others = counts.filter((g) => g.rounds !== common).map((g) => `${g.label}: ${g.rounds}`);
  return `best of ${common} round${common === 1 ? "" : "s"}${others.length ? ` (${others.join(", ")})` : ""}`;
}

function chart(byTree) {
  const main = byTree.has("100k-tree")
    ? "100k-tree"
    : [...byTree.keys()].filter((t) => /-tree$/.test(t)).sort((a, b) => treeSize(b) - treeSize(a))[0];
  if (!main) return undefined;
  const groups = [];
  for (const backend of BACKENDS) {
    const tree = byTree.get(main).has(backend) ? main : generatedTreeOf(byTree, backend);
    if (!tree) continue;
    const m = byTree.get(tree).get(backend);
    const sub = {
      memory: "in-process Map",
      lmdb: "local disk, fsync",
      postgres: "PostgreSQL 15, loopback",
      s3: "s3rver, loopback",
      grpc: "castore serve → memory",
      cache: "near memory, far lmdb; 1st read",
    }[backend];
    groups.push({
      label: backend,
      sub: tree === main ? sub : `${sub}; ${tree.replace("-tree", "")} tree*`,
      bars: [
        { series: "ingest", value: m.ingest?.value },
        { series: "getRecursive", value: m.getRecursive?.value },
      ],
      otherTree: tree === main ? undefined : { tree, baseline: m.ingest?.baseline ?? m.getRecursive?.baseline },
      rounds: roundsOf(m.ingest ?? m.getRecursive),
    });
  }
  const mainBackends = byTree.get(main);
  const baselineResult = [...mainBackends.values()].map((m) => m.ingest ?? m.getRecursive).find((r) => r?.baseline);
  const baseline = baselineResult?.baseline ?? 0;
  const subtitleRounds = roundsText(groups);
  groups.push({ label: "baseline", sub: "bare encode + BLAKE3", bars: [{ series: "baseline", value: baseline }] });

  const W = 1000;
  const H = 600;
  const margin = { left: 100, right: 30, top: 108, bottom: 150 };
  const plotW = W - margin.left - margin.right;
  const plotH = H - margin.top - margin.bottom;
  const maxValue = Math.max(baseline, ...groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)));
  const axis = niceAxis(maxValue * 1.08);
  const y = (v) => margin.top + plotH - (v / axis.max) * plotH;
  const colors = { ingest: "#2f6db5", getRecursive: "#e07b24", baseline: "#8c8c8c" };
  const font = "DejaVu Sans, Verdana, Arial, sans-serif";
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="${font}" font-size="13">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${W / 2}" y="30" text-anchor="middle" font-size="19" font-weight="bold">castore backends: ingest and getRecursive of a ${main.replace("-tree", "")}-directory generated tree</text>`,
    `<text x="${W / 2}" y="52" text-anchor="middle" font-size="13" fill="#444">directories per second, ${subtitleRounds}, each on a fresh store opened with openDirectoryService(url); higher is better</text>`,
  );
  // legend
  const legend = [
    ["ingest", "ingest (one upload)"],
    ["getRecursive", "getRecursive (whole tree)"],
    ["baseline", "bare encode + BLAKE3 of the same directories"],
  ];
  let lx = margin.left;
  for (const [series, text] of legend) {
    out.push(`<rect x="${lx}" y="70" width="14" height="14" fill="${colors[series]}"/>`);
    out.push(`<text x="${lx + 20}" y="82">${escapeXml(text)}</text>`);
    lx += 28 + text.length * 7.3;
  }
  // grid and y axis
  for (let v = 0; v <= axis.max + 1e-9; v += axis.step) {
    const yy = y(v).toFixed(1);
    out.push(
      `<line x1="${margin.left}" y1="${yy}" x2="${W - margin.right}" y2="${yy}" stroke="${v === 0 ? "#000" : "#ddd"}" stroke-width="1"/>`,
    );
    out.push(
      `<text x="${margin.left - 8}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${escapeXml(v === 0 ? "0" : shortRate(v))}</text>`,
    );
  }
  out.push(
    `<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${margin.top + plotH}" stroke="#000"/>`,
  );
  const yLabelY = margin.top + plotH / 2;
  out.push(
    `<text x="28" y="${yLabelY}" text-anchor="middle" font-size="14" transform="rotate(-90 28 ${yLabelY})">directories per second</text>`,
  );
  // the baseline as a dashed line across
  if (baseline) {
    const yb = y(baseline).toFixed(1);
    out.push(
      `<line x1="${margin.left}" y1="${yb}" x2="${W - margin.right}" y2="${yb}" stroke="${colors.baseline}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
    );
  }
  // bars
  const groupW = plotW / groups.length;
  const barW = Math.min(44, (groupW * 0.8) / 2);
  groups.forEach((g, i) => {
    const cx = margin.left + groupW * (i + 0.5);
    const start = cx - (g.bars.length * barW) / 2;
    g.bars.forEach((b, k) => {
      const x = start + k * barW;
      if (b.value === undefined) {
        out.push(
          `<text x="${(x + barW / 2).toFixed(1)}" y="${(y(0) - 6).toFixed(1)}" text-anchor="middle" font-size="11" fill="#a00">n/a</text>`,
        );
        return;
      }
      const top = y(b.value);
      const h = Math.max(b.value > 0 ? 1 : 0, y(0) - top);
      out.push(
        `<rect x="${(x + 2).toFixed(1)}" y="${(y(0) - h).toFixed(1)}" width="${(barW - 4).toFixed(1)}" height="${h.toFixed(1)}" fill="${colors[b.series]}"/>`,
      );
      out.push(
        `<text x="${(x + barW / 2).toFixed(1)}" y="${(y(0) - h - 5).toFixed(1)}" text-anchor="middle" font-size="12">${escapeXml(shortRate(b.value))}</text>`,
      );
    });
    const labelY = margin.top + plotH + 22;
    out.push(
      `<text x="${cx.toFixed(1)}" y="${labelY}" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(g.label)}</text>`,
    );
    wrap(g.sub, 17).forEach((line, n) => {
      out.push(
        `<text x="${cx.toFixed(1)}" y="${labelY + 17 + n * 15}" text-anchor="middle" font-size="12" fill="#444">${escapeXml(line)}</text>`,
      );
    });
  });
  const subLines = Math.max(...groups.map((g) => wrap(g.sub, 17).length));
  out.push(
    `<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 22 + 17 + subLines * 15 + 8}" text-anchor="middle" font-size="14">backend (store URL scheme)</text>`,
  );
  const footnotes = [];
  for (const g of groups.filter((g) => g.otherTree)) {
    footnotes.push(
      `* ${g.label} ran a smaller generated tree (${g.otherTree.tree}; bare baseline on it ${shortRate(g.otherTree.baseline)}/s): one object per directory at a few hundred PUTs/s on the test server.`,
    );
  }
  footnotes.push(
    "Taken on a shared 2-core machine while other tests ran: absolute rates swing by up to 2× between runs.",
  );
  footnotes.forEach((f, n) => {
    out.push(
      `<text x="${margin.left}" y="${H - 28 + n * 16 - (footnotes.length - 1) * 16}" font-size="12" fill="#444">${escapeXml(f)}</text>`,
    );
  });
  out.push("</svg>");
  return out.join("\n") + "\n";
}

function wrap(text, width) {
  const words = text.split(" ");
  const lines = [""];
  for (const w of words) {
    const last = lines[lines.length - 1];
    if (last && last.length + 1 + w.length > width) lines.push(w);
    else lines[lines.length - 1] = last ? `${last} ${w}` : w;
  }
  return lines;
}

// ---- docs/backends.md ----

/** Splits a markdown table row on unescaped pipes. */
function splitRow(line) {
  const cells = [];
  let current = "";
  const body = line.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < body.length; i++) {
    if (body[i] === "\\" && body[i + 1] === "|") {
      current += "\\|";
      i++;
    } else if (body[i] === "|") {
      cells.push(current.trim());
      current = "";
    } else current += body[i];
  }
  cells.push(current.trim());
  return cells;
}

/**
 * The cell of a "measured: <tree>" column for one backend: ingest and
 * getRecursive with their ratios to the bare loop. For "measured: generated
 * tree", the backend's largest generated tree (s3's is smaller, and says so).
 */
function measuredCell(byTree, backend, column) {
  const key = column.replace(/^measured:\s*/i, "").trim();
  let tree = key;
  let sizeNote = "";
  if (/generated/i.test(key)) {
    tree = generatedTreeOf(byTree, backend);
    if (tree && tree !== "100k-tree") sizeNote = ` (${tree.replace("-tree", "")} directories)`;
  }
  const m = tree && byTree.get(tree)?.get(backend);
  if (!m) return "not measured";
  const part = (label, r) => {
    if (!r) return undefined;
    if (isRefused(r)) return `${label} refused (${refusalCode(r)})`;
    return `${label} ${shortRate(r.value)}/s (${formatRatio(r.ratio)}×)`;
  };
  const warm = m["getRecursive (warm)"];
  const parts = [
    part("ingest", m.ingest),
    part(warm ? "getRecursive, 1st read" : "getRecursive", m.getRecursive),
    part("2nd read", warm),
  ].filter(Boolean);
  const unit = (m.ingest ?? m.getRecursive)?.unit === "entries/s" ? " entries" : "";
  return `${parts.join("<br>")}${sizeNote}${unit ? "<br>(rates in entries/s)" : ""}`;
}

function updateBackendsDoc(text, byTree) {
  const begin = "<!-- bench:begin -->";
  const end = "<!-- bench:end -->";
  const a = text.indexOf(begin);
  const b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`docs/backends.md: no ${begin} … ${end} section`);
  const section = text.slice(a + begin.length, b);
  const lines = section.split("\n");
  const headerAt = lines.findIndex((l) => l.trim().startsWith("|"));
  if (headerAt < 0) throw new Error("docs/backends.md: no table between the bench markers");
  const header = splitRow(lines[headerAt]);
  const measured = header.map((h, i) => (/^measured/i.test(h) ? i : -1)).filter((i) => i >= 0);
  for (let i = headerAt + 2; i < lines.length && lines[i].trim().startsWith("|"); i++) {
    const cells = splitRow(lines[i]);
    // "`grpc+http://`, `grpc+unix://`" → "grpc": the scheme's first word names the backend.
    const backend = /^[a-z0-9]+/.exec(cells[0].replace(/[`*]/g, "").trim())?.[0] ?? "";
    for (const c of measured) cells[c] = measuredCell(byTree, backend, header[c]);
    lines[i] = `| ${cells.join(" | ")} |`;
  }
  return text.slice(0, a + begin.length) + lines.join("\n") + text.slice(b);
}

// ---- main ----

const results = readResults(resultsFile);
const byTree = crossBackend(results);
const written = statSync(resultsFile)
  .mtime.toISOString()
  .replace(/\.\d+Z$/, "Z");

/**
 * Writes a markdown document as the repository's prettier would leave it:
 * the lint step checks docs/ with prettier (bench-report.md is left out of
 * that check), and a regenerated table is otherwise padded differently (a
 * report run once broke CI that way).
 */
async function writeMarkdown(file, text) {
  const options = (await prettier.resolveConfig(file)) ?? {};
  writeFileSync(file, await prettier.format(text, { ...options, filepath: file }));
}

writeFileSync(join(docs, "bench-report.md"), `${benchReport(results, byTree, written)}\n`);
console.log(`wrote ${join(docs, "bench-report.md")} (${results.length} results)`);

const svg = chart(byTree);
if (svg) {
  writeFileSync(join(docs, "bench-chart.svg"), svg);
  console.log(`wrote ${join(docs, "bench-chart.svg")}`);
  if (pngFile) {
    execFileSync("rsvg-convert", ["-o", pngFile, join(docs, "bench-chart.svg")]);
    console.log(`rendered ${pngFile}`);
  }
} else {
  console.log("no cross-backend results (backends: …) in the results: chart not written");
}

const backendsDoc = join(docs, "backends.md");
if (existsSync(backendsDoc)) {
  await writeMarkdown(backendsDoc, updateBackendsDoc(readFileSync(backendsDoc, "utf8"), byTree));
  console.log(`updated the measured columns of ${backendsDoc}`);
}
