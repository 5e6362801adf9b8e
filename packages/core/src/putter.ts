/**
 * ClosurePutter: the DirectoryPutter that local backends build on. It checks
 * the whole upload with ClosureValidator and hands the backend every
 * directory, leaves to root, in one `commit` call at close(), so a backend
 * only implements "store these bytes atomically". Nothing is visible before
 * close() succeeds.
 */
import type { Digest } from "./digest.js";
import { AbortError, ClosureError } from "./errors.js";
import { type ValidatedClosure, ClosureValidator } from "./closure.js";
import type { Directory } from "./model.js";
import type { DirectoryPutter, SizeCheck } from "./service.js";

export type CommitClosure = (closure: ValidatedClosure, signal?: AbortSignal) => Promise<void>;

type State = { kind: "open" } | { kind: "failed"; error: unknown } | { kind: "closed" } | { kind: "aborted" };

export class ClosurePutter implements DirectoryPutter {
  private readonly validator: ClosureValidator;
  private state: State = { kind: "open" };

  constructor(
    private readonly commit: CommitClosure,
    private readonly opts: { sizeCheck?: SizeCheck; signal?: AbortSignal; maxDirectories?: number } = {},
  ) {
    this.validator = new ClosureValidator({ sizeCheck: opts.sizeCheck });
  }

  private checkOpen(): void {
    switch (this.state.kind) {
      case "failed":
        throw this.state.error;
      case "closed":
        throw new ClosureError("upload already closed");
      case "aborted":
        throw new AbortError("upload was aborted");
    }
    if (this.opts.signal?.aborted) {
      this.state = { kind: "aborted" };
      throw new AbortError("upload was aborted", { cause: this.opts.signal.reason });
    }
  }

  async put(directory: Directory, bytes?: Uint8Array): Promise<void> {
    this.checkOpen();
    try {
      this.validator.add(directory, bytes);
      const max = this.opts.maxDirectories;
      if (max !== undefined && this.validator.count > max) {
        throw new ClosureError(`upload exceeds the limit of ${max} directories`);
      }
    } catch (error) {
      this.state = { kind: "failed", error };
      throw error;
    }
  }

  async close(): Promise<Digest> {
    this.checkOpen();
    try {
      const closure = this.validator.finish();
      await this.commit(closure, this.opts.signal);
      this.state = { kind: "closed" };
      return closure.root;
    } catch (error) {
      this.state = { kind: "failed", error };
      throw error;
    }
  }

  async abort(): Promise<void> {
    if (this.state.kind === "open" || this.state.kind === "failed") this.state = { kind: "aborted" };
  }
}
