/**
 * One call's abort signal, aborted with the reason of the first of its
 * sources that aborts (on the server: the client, the deadline, the idle
 * timer, the server's shutdown; on the client: its caller's signal, or the
 * client itself ending the call), and detached from every source when the
 * call ends.
 *
 * Not AbortSignal.any(): on Node 20 a long-lived source keeps every signal
 * ever combined with it (nodejs/node#55351), and the server's shutdown signal
 * lives as long as the server: 40–55 MiB per million calls, never freed
 * (issue 14 measured 40 MiB; AbortSignal.any() alone here, 53 MiB). Here
 * each source gets one 'abort' listener, removed by end() (or once this
 * signal aborts), so the shutdown signal (or a caller's long-lived one)
 * holds a listener per running call and nothing per finished one. A source that is an event rather than a
 * signal (a stream's close, a timer) calls abort() itself: no
 * AbortController of its own.
 */
export class CallSignal {
  private readonly controller = new AbortController();
  private readonly detachers: (() => void)[] = [];
  /** end() was called: nothing aborts this signal any more. */
  private ended = false;

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Aborts this signal when `source` aborts, with its reason, until end(). */
  follow(source: AbortSignal): this {
    if (this.controller.signal.aborted || this.ended) return this;
    if (source.aborted) {
      this.abort(source.reason);
      return this;
    }
    const onAbort = () => this.abort(source.reason);
    source.addEventListener("abort", onAbort, { once: true });
    this.detachers.push(() => source.removeEventListener("abort", onAbort));
    return this;
  }

  /** Aborts this signal with `reason`, unless it is aborted or ended already. */
  abort(reason: unknown): void {
    if (!this.controller.signal.aborted && !this.ended) this.controller.abort(reason);
    this.end();
  }

  /** The call is over: stop listening to the sources, and ignore later aborts (the signal stays as it is). */
  end(): void {
    this.ended = true;
    for (const detach of this.detachers.splice(0)) detach();
  }
}

/**
 * The signal of a client call that a caller drives for a while (an upload):
 * aborted by abort(), or by the caller's signal while the call runs. It
 * follows the caller's signal only from start() until the call settles, so
 * a finished call, or one never started, leaves nothing on it.
 */
export class ClientCallSignal {
  private readonly call = new CallSignal();

  constructor(private readonly caller: AbortSignal | undefined) {}

  /** The signal to run the call with. */
  get signal(): AbortSignal {
    return this.call.signal;
  }

  /** The signal that aborted (this call's, or the caller's before the call started); undefined while none has. */
  get aborted(): AbortSignal | undefined {
    if (this.call.signal.aborted) return this.call.signal;
    return this.caller?.aborted ? this.caller : undefined;
  }

  /** The call starts: follows the caller's signal until `settled` settles. */
  start(settled: Promise<unknown>): void {
    if (this.caller) this.call.follow(this.caller);
    const end = () => this.call.end();
    settled.then(end, end);
  }

  /** Aborts the call with the plain AbortError (which connect maps to CANCELLED: RST_STREAM CANCEL). */
  abort(): void {
    this.call.abort(undefined);
  }
}
