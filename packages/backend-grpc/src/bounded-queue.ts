/**
 * A single-producer, single-consumer queue with a fixed capacity: `push`
 * waits while the queue is full, so a fast producer is held back by a slow
 * consumer (the network) instead of filling memory.
 */
export class BoundedQueue<T> {
  private readonly items: T[] = [];
  private ended = false;
  private error: { reason: unknown } | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`queue capacity must be at least 1, got ${capacity}`);
  }

  get length(): number {
    return this.items.length;
  }

  /** Adds an item, waiting for room. Rejects once the queue has failed or ended. */
  async push(item: T): Promise<void> {
    for (;;) {
      if (this.error) throw this.error.reason;
      if (this.ended) throw new Error("queue ended");
      if (this.length < this.capacity) break;
      await new Promise<void>((resolve) => (this.wakeProducer = resolve));
    }
    this.items.push(item);
    this.wake("consumer");
  }

  /** No more items: the consumer finishes after draining what is queued. */
  end(): void {
    this.ended = true;
    this.wake("consumer");
  }

  /** Drops what is queued; pending and later pushes reject with `reason`, the consumer stops. */
  fail(reason: unknown): void {
    if (this.error) return;
    this.error = { reason };
    this.items.length = 0;
    this.wake("consumer");
    this.wake("producer");
  }

  private wake(who: "consumer" | "producer"): void {
    const fn = who === "consumer" ? this.wakeConsumer : this.wakeProducer;
    if (who === "consumer") this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    fn?.();
  }

  /** Takes everything queued whenever the consumer asks: the items ready to go out together. */
  async *batches(): AsyncGenerator<T[]> {
    for (;;) {
      if (this.error) return;
      if (this.length > 0) {
        const batch = this.items.splice(0);
        this.wake("producer");
        yield batch;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }
}
