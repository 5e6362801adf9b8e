/**
 * A response body: the messages of a call, framed, with the ones that are
 * ready joined into fewer, larger writes. Messages stay one Directory each
 * on the wire; only the HTTP/2 DATA frames carry several. Without this,
 * every directory costs one `stream.write()` on the sender and one read
 * event on the receiver, which dominates the cost of a recursive Get.
 *
 * A pump reads the items (e.g. the backend's getRecursive, directly: no
 * generator in between) and encodes them; the consumer (the response writer)
 * takes everything queued at once. The pump reads ahead by at most
 * `maxBytes`, so backpressure is kept: when the client reads slowly, the
 * writer waits for 'drain', the queue fills, and the pump stops pulling from
 * the backend. Returning or throwing into the body stops the pump and
 * returns the items' iterator (a client that goes away stops the backend's
 * read), and so does aborting `signal`. `onEnd` is called once the items are done or failed, before the
 * body ends: the place to set the trailers.
 */
import { envelope, envelopePrefix } from "./grpc-framing.js";

export interface MessageSource<T> {
  items: AsyncIterable<T> | Iterable<T>;
  /**
   * The item's message: its bytes, or its parts in order, written as they
   * are and not joined (for a large message whose bulk is in hand already,
   * such as a BlobChunk's data: joining would copy every byte sent once
   * more). Parts are the body's from then on: the source never changes them.
   */
  encode(item: T): Uint8Array | readonly Uint8Array[];
}

/** The body, as writes: each a list of buffers to write in order (one joined buffer, unless a message came in parts). */
export function messageBody<T>(
  open: () => Promise<MessageSource<T>>,
  opts: { maxBytes: number; signal: AbortSignal; onEnd: (error: unknown) => void },
): AsyncIterable<Uint8Array[]> {
  return { [Symbol.asyncIterator]: () => new MessageBody(open, opts.maxBytes, opts.signal, opts.onEnd) };
}

class MessageBody<T> implements AsyncIterator<Uint8Array[]> {
  private queue: (Uint8Array | readonly Uint8Array[])[] = [];
  private queuedBytes = 0;
  private finished = false;
  private stopped = false;
  private pump: Promise<void> | undefined;
  /** The items are a synchronous iterable (all in hand), not an async one. */
  private itemsInHand = false;
  private iterator: AsyncIterator<T> | Iterator<T> | undefined;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  constructor(
    private readonly open: () => Promise<MessageSource<T>>,
    private readonly maxBytes: number,
    private readonly signal: AbortSignal,
    private readonly onEnd: (error: unknown) => void,
  ) {
    // A cancelled call (client reset, deadline, shutdown) stops the pump even
    // while it waits for room: the response writer may never drain again.
    signal.addEventListener("abort", () => void this.stop(), { once: true });
  }

  private wake(which: "consumer" | "producer"): void {
    const fn = which === "consumer" ? this.wakeConsumer : this.wakeProducer;
    if (which === "consumer") this.wakeConsumer = undefined;
    else this.wakeProducer = undefined;
    fn?.();
  }

  private startPump(): void {
    this.pump ??= (async () => {
      let error: unknown;
      try {
        const { items, encode } = await this.open();
        const isAsync = Symbol.asyncIterator in items;
        this.itemsInHand = !isAsync;
        const it = isAsync ? items[Symbol.asyncIterator]() : items[Symbol.iterator]();
        this.iterator = it;
        for (;;) {
          if (this.signal.aborted) throw this.signal.reason;
          while (this.queuedBytes >= this.maxBytes && !this.stopped) {
            await new Promise<void>((resolve) => (this.wakeProducer = resolve));
          }
          // Stopped by the signal (deadline, shutdown) while waiting for room:
          // the call ends with its reason, not OK after part of the answer.
          if (this.signal.aborted) throw this.signal.reason;
          if (this.stopped) break;
          const r = await it.next();
          if (r.done) break;
          const message = encode(r.value);
          this.queue.push(message);
          this.queuedBytes += 5 + messageLength(message);
          this.wake("consumer");
        }
      } catch (e) {
        error = e ?? new Error("unknown error");
      } finally {
        this.onEnd(error);
        this.finished = true;
        this.wake("consumer");
      }
    })();
  }

  async next(): Promise<IteratorResult<Uint8Array[]>> {
    this.startPump();
    while (this.queue.length === 0) {
      if (this.finished) return { done: true, value: undefined };
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
    if (this.queuedBytes < this.maxBytes / 2 && !this.finished && !this.itemsInHand) {
      // Let a source that produces without waiting on I/O fill the batch
      // first. Not for items in hand (an array: a unary answer), which are
      // all queued at once: that would only delay a small call by a turn of
      // the event loop.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const messages = this.queue;
    const total = this.queuedBytes;
    this.queue = [];
    this.queuedBytes = 0;
    this.wake("producer");
    return { done: false, value: framed(messages, total) };
  }

  private async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake("producer");
    // If the pump is inside the items' next(), an async generator runs return() after it.
    try {
      await this.iterator?.return?.();
    } catch {
      /* the items failed while stopping: the call is over anyway */
    }
  }

  async return(): Promise<IteratorResult<Uint8Array[]>> {
    await this.stop();
    return { done: true, value: undefined };
  }

  async throw(): Promise<IteratorResult<Uint8Array[]>> {
    await this.stop();
    return { done: true, value: undefined };
  }
}

function messageLength(message: Uint8Array | readonly Uint8Array[]): number {
  if (message instanceof Uint8Array) return message.length;
  let n = 0;
  for (const part of message) n += part.length;
  return n;
}

/**
 * The messages framed, as buffers to write in order: whole messages joined
 * into one buffer (`total`: their framed size, when all are whole), a
 * message in parts as its frame prefix and then its parts as they are.
 */
function framed(messages: readonly (Uint8Array | readonly Uint8Array[])[], total: number): Uint8Array[] {
  if (messages.every((m) => m instanceof Uint8Array)) return [envelope(messages as Uint8Array[], total)];
  const out: Uint8Array[] = [];
  let whole: Uint8Array[] = [];
  for (const m of messages) {
    if (m instanceof Uint8Array) {
      whole.push(m);
      continue;
    }
    if (whole.length > 0) out.push(envelope(whole));
    whole = [];
    out.push(envelopePrefix(messageLength(m)), ...m);
  }
  if (whole.length > 0) out.push(envelope(whole));
  return out;
}
