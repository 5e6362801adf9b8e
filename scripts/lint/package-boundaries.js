// @ts-check
/**
 * ESLint rule `castore/package-boundaries`: the package graph as a lint rule.
 *
 * - A relative import must stay inside the importing file's package: another
 *   package is reached by its name and public exports, never by a path into
 *   its `src/` or `dist/`.
 * - An import of a workspace package must be declared in the importing
 *   package's package.json (`dependencies`/`peerDependencies` for shipped
 *   code, `devDependencies` too for test files).
 * - The layering: each package lists the workspace packages its shipped code
 *   and its tests may import (core knows no backend; a backend knows no other
 *   backend; libraries never import the cli or the test servers at run time).
 *
 * Hand-written because the maintained boundary plugins either need Node 22
 * (dependency-cruiser) or a TypeScript resolver to map our `.js` specifiers
 * onto `.ts` sources; this needs only paths and package.json files.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";

export const SCOPE = "@castore-ts/";

/** A file is test code when the build leaves it out of dist (see each tsconfig.build.json). */
export function isTestFile(file) {
  const base = path.basename(file);
  return /\.test\.ts$|\.test-helper\.ts$|^test-.*\.ts$/.test(base) || file.split(path.sep).includes("test");
}

const packageJsonCache = new Map();

/** The nearest package.json above `file`: { dir, json }. */
export function owningPackage(file) {
  let dir = path.dirname(path.resolve(file));
  for (;;) {
    if (packageJsonCache.has(dir)) return packageJsonCache.get(dir);
    const candidate = path.join(dir, "package.json");
    if (existsSync(candidate)) {
      const found = { dir, json: JSON.parse(readFileSync(candidate, "utf8")) };
      packageJsonCache.set(dir, found);
      return found;
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** A package of ours (the repository's root package.json is not one). */
function isWorkspacePackage(found) {
  return found !== undefined && typeof found.json.name === "string" && found.json.name.startsWith(SCOPE);
}

/** `@castore-ts/core/sub/path` → `core`; undefined for anything outside the scope. */
function workspaceName(specifier) {
  if (!specifier.startsWith(SCOPE)) return undefined;
  return specifier.slice(SCOPE.length).split("/")[0];
}

/** @type {import("eslint").Rule.RuleModule} */
export const packageBoundaries = {
  meta: {
    type: "problem",
    docs: { description: "keep imports inside the declared package graph" },
    schema: [
      {
        type: "object",
        properties: {
          layers: { type: "object", additionalProperties: { type: "object" } },
        },
        additionalProperties: false,
      },
    ],
    messages: {
      leavesPackage: "relative import '{{specifier}}' leaves package {{pkg}}: import the other package by name",
      undeclared: "{{pkg}} imports {{dep}} but does not declare it in package.json {{where}}",
      layering: "{{pkg}} ({{kind}} code) may not import {{dep}}: {{why}}",
    },
  },
  create(context) {
    const file = context.filename;
    const owner = owningPackage(file);
    if (!owner) return {};
    const pkgName = owner.json.name;
    const short = pkgName.startsWith(SCOPE) ? pkgName.slice(SCOPE.length) : pkgName;
    const test = isTestFile(path.relative(owner.dir, file));
    const kind = test ? "test" : "shipped";
    const layers = context.options[0]?.layers ?? {};
    const layer = layers[short];

    /**
     * `isPath`: a file path computed from this file (`new URL(p, import.meta.url)`),
     * not an import. It may reach repository files that belong to no package
     * (docs/), but never into another package.
     */
    function check(node, specifier, isPath = false) {
      if (typeof specifier !== "string") return;
      if (specifier.startsWith(".")) {
        const target = path.resolve(path.dirname(file), specifier);
        const rel = path.relative(owner.dir, target);
        if (!(rel.startsWith("..") || path.isAbsolute(rel))) return;
        if (isPath && !isWorkspacePackage(owningPackage(path.join(target, "x")))) return;
        context.report({ node, messageId: "leavesPackage", data: { specifier, pkg: pkgName } });
        return;
      }
      const dep = workspaceName(specifier);
      if (dep === undefined || dep === short) return;
      const depName = SCOPE + dep;
      const { dependencies = {}, peerDependencies = {}, devDependencies = {} } = owner.json;
      const declared = depName in dependencies || depName in peerDependencies || (test && depName in devDependencies);
      if (!declared) {
        const where = test ? "(dependencies or devDependencies)" : "(dependencies; devDependencies do not ship)";
        context.report({ node, messageId: "undeclared", data: { pkg: pkgName, dep: depName, where } });
      }
      if (layer) {
        const allowed = test ? [...(layer.shipped ?? []), ...(layer.test ?? [])] : (layer.shipped ?? []);
        if (!allowed.includes("*") && !allowed.includes(dep)) {
          context.report({ node, messageId: "layering", data: { pkg: pkgName, kind, dep: depName, why: layer.why } });
        }
      }
    }

    return {
      ImportDeclaration: (node) => check(node.source, node.source.value),
      ExportNamedDeclaration: (node) => node.source && check(node.source, node.source.value),
      ExportAllDeclaration: (node) => check(node.source, node.source.value),
      ImportExpression: (node) => node.source.type === "Literal" && check(node.source, node.source.value),
      // new URL("../x", import.meta.url): a path computed from this file, so it must stay in the package too.
      NewExpression: (node) => {
        const [first, second] = node.arguments;
        if (node.callee.type !== "Identifier" || node.callee.name !== "URL") return;
        if (first?.type !== "Literal" || typeof first.value !== "string" || !first.value.startsWith(".")) return;
        const isImportMetaUrl =
          second?.type === "MemberExpression" &&
          second.object.type === "MetaProperty" &&
          second.property.type === "Identifier" &&
          second.property.name === "url";
        if (isImportMetaUrl) check(first, first.value, true);
      },
    };
  },
};
