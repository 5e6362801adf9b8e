/**
 * The web view in a real browser: Debian's chromium driven by playwright-core
 * (headless). One tree imported with the CLI (nested directories, a name that
 * is not UTF-8, a symlink, an executable) and served by `castore serve
 * --web-listen`; and an in-process web server over a memory store whose
 * DirectoryService lies about one directory, with a 50 000-entry directory
 * beside it. The browser must walk, preview, download, follow a ref, show the
 * large directory without blocking, and refuse the directory that does not
 * match its digest, saying which.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Browser, chromium, type Page } from "playwright-core";
import {
  type BlobReadOptions,
  type BlobService,
  type Digest,
  type DirectoryService,
  directoryDigest,
  directorySize,
  fixtures,
  makeDirectory,
  makeDirectoryNode,
  makeFileNode,
} from "@castore-ts/core";
import { openMemoryStore } from "@castore-ts/backend-memory";
import { createWebServer, loadStaticAssets, type WebServer } from "@castore-ts/web";
import { WEB_APP_DIR } from "@castore-ts/cli";
import { type CastoreServeProcess, runCastore, startCastoreServe } from "@castore-ts/testing";
import { CASTORE_BIN } from "./castore-bin.js";

const CHROMIUM = "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];
const LATIN1_NAME = Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x2e, 0x74, 0x78, 0x74]); // "caf\xe9.txt"
const MANY = 50_000;

/** Waits for `castore: web at URL` on the server's stderr. */
function webUrlOf(server: CastoreServeProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    const look = () => {
      const m = /castore: web at (http:\S+)/.exec(server.stderr());
      if (m) {
        server.child.stderr!.off("data", look);
        resolve(m[1]);
      }
    };
    server.child.stderr!.on("data", look);
    server.child.once("exit", () => reject(new Error(`castore serve exited: ${server.stderr()}`)));
    look();
  });
}

/** Loads a page and waits until the app says it is done (data-state: ready or error). */
async function open(page: Page, url: string): Promise<string> {
  await page.goto(url);
  await page.waitForSelector("body[data-state]");
  return (await page.getAttribute("body", "data-state"))!;
}

// CI installs chromium (.ci/lib/chromium.sh), so there a missing one fails; elsewhere it skips, saying why.
const HAVE_CHROMIUM = existsSync(CHROMIUM) || Boolean(process.env.CI);
const TITLE = HAVE_CHROMIUM ? `web view in ${CHROMIUM}` : `web view (skipped: ${CHROMIUM} is not installed)`;

describe.skipIf(!HAVE_CHROMIUM)(TITLE, () => {
  let tmp: string;
  let browser: Browser;
  let server: CastoreServeProcess;
  let web: string;
  let root: string;
  let lying: WebServer;
  let lyingUrl: string;
  let lyingRoot: Digest;
  let tamperedChild: Digest;
  let noteDigest: Digest;

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "castore-web-"));
    const tree = join(tmp, "tree");
    mkdirSync(join(tree, "sub", "nested"), { recursive: true });
    writeFileSync(join(tree, "hello.txt"), "hello, browser\n");
    writeFileSync(join(tree, "run.sh"), "#!/bin/sh\necho hi\n", { mode: 0o755 });
    symlinkSync("hello.txt", join(tree, "link"));
    writeFileSync(join(tree, "sub", "nested", "deep.txt"), "deep down\n");
    writeFileSync(Buffer.concat([Buffer.from(join(tree, "/")), LATIN1_NAME]), "caf\xe9 in latin-1\n", "latin1");
    const store = `lmdb://${join(tmp, "store")}`;
    const imported = await runCastore(CASTORE_BIN, [
      "import",
      tree,
      "--store",
      store,
      "--ref",
      "releases/latest",
      "--no-progress",
    ]);
    expect(imported.code, imported.stderr).toBe(0);
    root = imported.stdout.toString().trim();
    server = await startCastoreServe(CASTORE_BIN, [
      "--store",
      store,
      "--listen",
      "127.0.0.1:0",
      "--web-listen",
      "127.0.0.1:0",
    ]);
    web = await webUrlOf(server);

    // In process: a store whose DirectoryService returns another directory for
    // one digest, and whose BlobService returns other bytes for one blob.
    const memory = openMemoryStore();
    const truth = new TextEncoder().encode("the truth\n");
    const writer = memory.blobs.openWriter();
    await writer.write(truth);
    noteDigest = (await writer.close()).digest;
    const files = Array.from({ length: MANY }, (_, i) =>
      makeFileNode(`f${String(i).padStart(6, "0")}`, fixtures.EMPTY_BLOB_DIGEST, 0),
    );
    const many = makeDirectory({ files });
    const child = makeDirectory({ files: [makeFileNode("honest.txt", fixtures.EMPTY_BLOB_DIGEST, 0)] });
    const forged = makeDirectory({ files: [makeFileNode("forged.txt", fixtures.EMPTY_BLOB_DIGEST, 0)] });
    const top = makeDirectory({
      directories: [
        makeDirectoryNode("evil", directoryDigest(child), directorySize(child)),
        makeDirectoryNode("many", directoryDigest(many), directorySize(many)),
      ],
      files: [makeFileNode("note.txt", noteDigest, truth.length)],
    });
    const putter = memory.directories.putMultipleStart();
    for (const d of [child, many, top]) await putter.put(d);
    lyingRoot = await putter.close();
    tamperedChild = directoryDigest(child);
    const directories: DirectoryService = Object.assign(Object.create(memory.directories), {
      get: async (digest: Digest) => (digest.equals(tamperedChild) ? forged : memory.directories.get(digest)),
    });
    const blobs: BlobService = Object.assign(Object.create(memory.blobs), {
      read: async (digest: Digest, opts?: BlobReadOptions) =>
        digest.equals(noteDigest)
          ? (async function* () {
              yield new TextEncoder().encode("a big lie\n");
            })()
          : memory.blobs.read(digest, opts),
    });
    lying = createWebServer({
      directories,
      blobs,
      refs: memory.refs,
      listen: { host: "127.0.0.1", port: 0 },
      assets: loadStaticAssets(WEB_APP_DIR),
    });
    await lying.listen();
    lyingUrl = lying.url!;

    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
  });

  afterAll(async () => {
    await browser?.close();
    await lying?.close();
    await server?.stop();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it("lists a tree, walks into a subdirectory, previews and downloads a file", async () => {
    const page = await browser.newPage();
    const outside: string[] = [];
    page.on("request", (r) => {
      if (!r.url().startsWith(web) && !r.url().startsWith("data:")) outside.push(r.url());
    });
    expect(await open(page, `${web}tree/${root}`)).toBe("ready");
    const rows = page.locator("#listing .rows .row");
    // Name order by bytes; the name that is not UTF-8 escaped as castore ls prints it.
    expect(await rows.locator(".cell.name").allInnerTexts()).toEqual([
      "caf\\xe9.txt",
      "hello.txt",
      "link",
      "run.sh",
      "sub/",
    ]);
    const cellOf = async (row: number, cell: string) =>
      (await rows.nth(row).locator(`.cell.${cell}`).innerText()).trim();
    expect(await cellOf(3, "exec")).toBe("x");
    expect(await cellOf(1, "exec")).toBe("");
    expect(await cellOf(2, "target")).toBe("hello.txt");
    expect(await cellOf(2, "kind")).toBe("symlink");
    expect(await cellOf(1, "size")).toBe("15");
    expect(await cellOf(4, "kind")).toBe("directory");
    expect(await cellOf(1, "digest")).toMatch(/^[0-9a-f]{12}/);

    await page.click('a:text-is("sub/")');
    await page.waitForURL(`${web}tree/${root}/sub`);
    await page.waitForSelector("body[data-state=ready]");
    expect(await page.locator("nav[aria-label=breadcrumbs]").innerText()).toContain("sub");
    await page.click('a:text-is("nested/")');
    await page.waitForSelector("body[data-state=ready]");
    await page.click('a:text-is("deep.txt")');
    await page.waitForSelector("body[data-state=ready]");
    expect(await page.locator("pre.preview").innerText()).toBe("deep down\n");

    // The name that is not UTF-8: its link carries the byte as %E9 and still works.
    await open(page, `${web}tree/${root}`);
    await page.locator("#listing .cell.name a").first().click();
    await page.waitForSelector("body[data-state=ready]");
    expect(page.url()).toBe(`${web}tree/${root}/caf%E9.txt`);
    // Its contents are not UTF-8 either: a hex preview.
    expect(await page.getAttribute("pre.preview", "data-preview")).toBe("hex");
    expect(await page.locator("pre.preview").innerText()).toMatch(/^00000000 {2}63 61 66 e9 20 69 6e/);

    await open(page, `${web}tree/${root}/hello.txt`);
    const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
    expect(download.suggestedFilename()).toBe("hello.txt");
    expect(readFileSync((await download.path())!).toString()).toBe("hello, browser\n");
    expect(outside).toEqual([]);
    await page.close();
  });

  it("follows a ref, and opens a digest typed in, from the home page", async () => {
    const page = await browser.newPage();
    expect(await open(page, web)).toBe("ready");
    await page.click('a:text-is("releases/latest")');
    await page.waitForSelector("body[data-state=ready]");
    expect(page.url()).toBe(`${web}tree/ref:releases%2Flatest`);
    expect(await page.locator("#listing .rows .row").count()).toBe(5);
    // The digest box opens a tree by its digest.
    await open(page, web);
    await page.fill("#open-root input[name=root]", root);
    await page.click("#open-root button[type=submit]");
    await page.waitForURL(`${web}tree/${root}`);
    await page.waitForSelector("body[data-state=ready]");
    expect(await page.locator("#listing .rows .row").count()).toBe(5);
    await page.close();
  });

  it("with --auth-token-file asks for the token, keeps it for the tab, and downloads with it; --web-public needs none", async () => {
    const tokenFile = join(tmp, "tokens");
    writeFileSync(tokenFile, "# web test\nweb-s3cret\n");
    const store = `lmdb://${join(tmp, "store")}`;
    const common = ["--store", store, "--listen", "127.0.0.1:0", "--web-listen", "127.0.0.1:0"];
    // LMDB lets several processes open one store: these servers share the first one's.
    const guarded = await startCastoreServe(CASTORE_BIN, [...common, "--auth-token-file", tokenFile]);
    try {
      const url = await webUrlOf(guarded);
      const page = await browser.newPage();
      expect(await open(page, `${url}tree/${root}`)).toBe("error");
      await page.fill("#login input[name=token]", "web-s3cret");
      await page.click("#login button[type=submit]");
      await page.waitForSelector("body[data-state=ready]");
      expect(await page.locator("#listing .rows .row").count()).toBe(5);
      expect(await page.evaluate("sessionStorage.getItem('castore.token')")).toBe("web-s3cret");
      await open(page, `${url}tree/${root}/hello.txt`);
      const [download] = await Promise.all([page.waitForEvent("download"), page.click("#download")]);
      expect(readFileSync((await download.path())!).toString()).toBe("hello, browser\n");
      await page.close();
    } finally {
      await guarded.stop();
    }
    const open_ = await startCastoreServe(CASTORE_BIN, [...common, "--auth-token-file", tokenFile, "--web-public"]);
    try {
      const url = await webUrlOf(open_);
      const page = await browser.newPage();
      expect(await open(page, `${url}tree/${root}`)).toBe("ready");
      expect(await page.locator("#login").count()).toBe(0);
      await page.close();
    } finally {
      await open_.stop();
    }
  });

  it("refuses a directory, and a file, whose bytes do not match the digest, naming it", async () => {
    const page = await browser.newPage();
    expect(await open(page, `${lyingUrl}tree/${lyingRoot.hex}`)).toBe("ready");
    expect(await open(page, `${lyingUrl}tree/${lyingRoot.hex}/evil`)).toBe("error");
    const alert = await page.locator("[role=alert]").innerText();
    expect(alert).toContain(`directory ${tamperedChild.hex} does not match its digest`);
    expect(await page.locator("text=forged.txt").count()).toBe(0);
    // A previewed file is checked the same way.
    expect(await open(page, `${lyingUrl}tree/${lyingRoot.hex}/note.txt`)).toBe("error");
    expect(await page.locator("[role=alert]").innerText()).toContain(`file contents ${noteDigest.hex} do not match`);
    expect(await page.locator("pre.preview").count()).toBe(0);
    await page.close();
  });

  it(`shows a ${MANY}-entry directory as a virtual list`, { timeout: 180_000 }, async () => {
    const page = await browser.newPage();
    expect(await open(page, `${lyingUrl}tree/${lyingRoot.hex}/many`)).toBe("ready");
    expect(await page.getAttribute("body", "data-rows")).toBe(String(MANY));
    const firstRowsMs = Number(await page.getAttribute("body", "data-first-rows-ms"));
    process.stderr.write(`web view: ${MANY}-entry directory listed ${firstRowsMs} ms after navigation start\n`);
    // Only rows near the viewport exist; scrolling to the end shows the last entry.
    expect(await page.locator("#listing .rows .row").count()).toBeLessThan(200);
    await page.evaluate("window.scrollTo(0, document.body.scrollHeight)");
    await page.waitForSelector(`.cell.name a:text-is("f${String(MANY - 1).padStart(6, "0")}")`);
    expect(await page.locator(`.cell.name a:text-is("f000000")`).count()).toBe(0);
    const screenshot = process.env.CASTORE_WEB_SCREENSHOT;
    if (screenshot) {
      await page.setViewportSize({ width: 1100, height: 620 });
      await open(page, `${web}tree/${root}`);
      await page.screenshot({ path: screenshot });
    }
    await page.close();
  });
});
