/**
 * A metric scraped from a Prometheus text exposition (what `castore serve
 * --metrics-listen` serves): the sum of every sample of that name, over all
 * its label sets. Tests count what a server received with it.
 */
export async function scrapeMetric(url: string, name: string): Promise<number> {
  const text = await (await fetch(url)).text();
  let total = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const end = line.search(/[{ ]/);
    if (end < 0 || line.slice(0, end) !== name) continue;
    total += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return total;
}
