// The lint rule that guards the package graph, run on imports that break it
// (and some that do not) as if they sat in real files of this repository.
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Linter } from "eslint";
import tseslint from "typescript-eslint";
import { describe, expect, it } from "vitest";
import { layers } from "../../eslint.config.js";
import { packageBoundaries, SCOPE } from "./package-boundaries.js";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

function lint(file: string, code: string): string[] {
  const linter = new Linter({ configType: "flat" });
  const messages = linter.verify(
    code,
    [
      {
        files: ["**/*.ts"],
        languageOptions: { parser: tseslint.parser as Linter.Parser },
        plugins: { castore: { rules: { "package-boundaries": packageBoundaries } } },
        rules: { "castore/package-boundaries": ["error", { layers }] },
      },
    ],
    path.join(repo, file),
  );
  return messages.map((m) => m.message);
}

describe("castore/package-boundaries", () => {
  it("refuses a backend import in core", () => {
    expect(lint("packages/core/src/x.ts", `import { a } from "${SCOPE}backend-memory";`)).toEqual([
      `${SCOPE}core imports ${SCOPE}backend-memory but does not declare it in package.json (dependencies; devDependencies do not ship)`,
      `${SCOPE}core (shipped code) may not import ${SCOPE}backend-memory: ${layers.core.why}`,
    ]);
  });

  it("refuses one backend importing another, even in its tests", () => {
    const messages = lint("packages/backend-lmdb/src/x.test.ts", `import { a } from "${SCOPE}backend-s3";`);
    expect(messages.some((m) => m.includes(`may not import ${SCOPE}backend-s3`))).toBe(true);
  });

  it("refuses relative paths into another package, as imports and as import.meta.url paths", () => {
    expect(lint("packages/backend-s3/src/x.test.ts", `import "../../backend-grpc/dist/index.js";`)).toEqual([
      `relative import '../../backend-grpc/dist/index.js' leaves package ${SCOPE}backend-s3: import the other package by name`,
    ]);
    expect(
      lint("packages/cli/src/x.ts", `const u = new URL("../../core/src/index.ts", import.meta.url);`),
    ).toHaveLength(1);
  });

  it("lets a file path reach repository files outside every package (docs/), but not an import", () => {
    expect(
      lint("packages/conformance/src/x.test.ts", `const u = new URL("../../../docs/spec.md", import.meta.url);`),
    ).toEqual([]);
    expect(
      lint("packages/conformance/src/x.test.ts", `import "../../../scripts/lint/package-boundaries.js";`),
    ).toHaveLength(1);
  });

  it("refuses test servers in shipped library code but allows them in its tests", () => {
    expect(lint("packages/backend-postgres/src/x.ts", `import "${SCOPE}testing";`)).toHaveLength(2);
    expect(lint("packages/backend-postgres/src/x.test.ts", `import "${SCOPE}testing";`)).toEqual([]);
  });

  it("accepts declared dependencies and paths inside the package", () => {
    expect(
      lint("packages/backend-grpc/src/a/b.ts", `import "${SCOPE}core"; import "../c.js"; import "./d.js";`),
    ).toEqual([]);
  });
});
