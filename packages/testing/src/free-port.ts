import { createServer } from "node:net";

/** Ports handed out by this process, never returned twice. */
const handedOut = new Set<number>();

/**
 * Returns a TCP port that was free on `host` a moment ago: binds port 0,
 * reads the port the kernel chose, closes the socket. Servers started with
 * host networking (containers included) then listen on it. A port is never
 * returned twice by the same process.
 */
export async function getFreePort(host = "127.0.0.1"): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer();
      server.unref();
      server.once("error", reject);
      server.listen({ host, port: 0, exclusive: true }, () => {
        const address = server.address();
        if (address === null || typeof address === "string") {
          server.close();
          reject(new Error(`could not read the port bound on ${host}`));
          return;
        }
        server.close((err) => (err ? reject(err) : resolve(address.port)));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`getFreePort: no new free port found on ${host}`);
}
