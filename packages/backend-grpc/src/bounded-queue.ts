/**
 * A single-producer, single-consumer queue with a fixed capacity: `push`
 * waits while the queue is full, so a fast producer is held back by a slow
 * consumer (the network) instead of filling memory.
 */
export class BoundedQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private head = 0;
  private ended = false;
  private error: { reason: unknown } | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`queue capacity must be at least 1, got ${capacity}`);
  }

  get length(): number {
    return this.items.length - this.head;
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
    this.head = 0;
    this.wake("consumer");
    this.wake("producer");
  }

  private wake(who: "consumer" | "producer"): void {
    const fn = who === "consumer" ? this.wakeConsumer : this.wakeProducer;
    if (who === "consumer") this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    fn?.();
  }

  /** Drops the consumed prefix of the array once it is empty or mostly consumed. */
  private compact(): void {
    if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
  }

  private take(): T {
    const item = this.items[this.head];
    this.items[this.head++] = undefined as T;
    this.compact();
    this.wake("producer");
    return item;
  }

  /** Takes everything queued (at most `max` items) whenever the consumer asks: the items ready to go out together. */
  async *batches(max = Number.MAX_SAFE_INTEGER): AsyncGenerator<T[]> {
    for (;;) {
      if (this.error) return;
      if (this.length > 0) {
        const n = Math.min(this.length, max);
        const batch = this.items.slice(this.head, this.head + n);
        this.items.fill(undefined as T, this.head, this.head + n);
        this.head += n;
        this.compact();
        this.wake("producer");
        yield batch;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.error) return;
      if (this.length > 0) {
        yield this.take();
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }
}
