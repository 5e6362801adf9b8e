import { envelope } from "./grpc-framing.js";

/**
 * Frames a stream of gRPC messages and joins the ones that are ready into
 * fewer, larger writes. Messages stay one Directory each on the wire; only
 * the HTTP/2 DATA frames carry several. Without this, every directory costs
 * one `stream.write()` on the sender and one read event on the receiver,
 * which dominates the cost of a recursive Get.
 *
 * The batcher reads ahead of its consumer by at most `maxBytes`, so
 * backpressure is kept: when the network is slow, the source is paused once
 * `maxBytes` are queued. Returning or throwing into the batcher is passed on
 * to the source (a client that goes away stops the producer).
 */
export function batchMessages(messages: AsyncIterable<Uint8Array>, maxBytes: number): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]: () => new MessageBatcher(messages[Symbol.asyncIterator](), maxBytes),
  };
}

class MessageBatcher implements AsyncIterator<Uint8Array> {
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private finished = false;
  private failure: { error: unknown } | undefined;
  private stopped = false;
  private pump: Promise<void> | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(
    private readonly source: AsyncIterator<Uint8Array>,
    private readonly maxBytes: number,
  ) {}

  private wake(which: "consumer" | "producer"): void {
    const fn = which === "consumer" ? this.wakeConsumer : this.wakeProducer;
    if (which === "consumer") this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    fn?.();
  }

  private startPump(): void {
    this.pump ??= (async () => {
      try {
        for (;;) {
          while (this.queuedBytes >= this.maxBytes && !this.stopped) {
            await new Promise<void>((resolve) => (this.wakeProducer = resolve));
          }
          if (this.stopped) return;
          const r = await this.source.next();
          if (r.done) return;
          this.queue.push(r.value);
          this.queuedBytes += 5 + r.value.length;
          this.wake("consumer");
        }
      } catch (error) {
        this.failure = { error };
      } finally {
        this.finished = true;
        this.wake("consumer");
      }
    })();
  }

  async next(): Promise<IteratorResult<Uint8Array>> {
    this.startPump();
    if (this.queuedBytes < this.maxBytes / 2 && !this.finished) {
      // Let a source that produces without waiting on I/O fill the batch first.
      await new Promise((resolve) => setImmediate(resolve));
    }
    while (this.queue.length === 0) {
      if (this.failure) throw this.failure.error;
      if (this.finished) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
    const messages = this.queue;
    const total = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    this.wake("producer");
    return { done: false, value: envelope(messages, total) };
  }

  private async stop(): Promise<void> {
    this.stopped = true;
    this.wake("producer");
    // The source's own next() may be pending; an async generator runs return()/throw() after it.
  }

  async return(value?: unknown): Promise<IteratorResult<Uint8Array>> {
    await this.stop();
    await this.source.return?.(value);
    return { done: true, value: undefined };
  }

  async throw(error?: unknown): Promise<IteratorResult<Uint8Array>> {
    await this.stop();
    if (this.source.throw) return this.source.throw(error);
    throw error;
  }
}

