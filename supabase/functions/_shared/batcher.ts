// Gathers calls into batches: whatever is added while a batch is on its way to the database goes
// in the next one, so a lone call waits only for the current turn of the event loop and a busy
// isolate makes one round trip (and one set of statement triggers) for many calls.

export interface BatcherOptions<In, Out> {
  /** Items one batch takes at most. */
  maxSize: number;
  /**
   * When a batch of several fails, each of its items is tried alone with this, so one item the
   * database refuses fails only its own call. Without it, every item of the batch gets the error.
   */
  single?: (item: In) => Promise<Out>;
}

interface Waiting<In, Out> {
  item: In;
  resolve: (out: Out) => void;
  reject: (err: unknown) => void;
}

export class Batcher<In, Out> {
  #queue: Waiting<In, Out>[] = [];
  #running = false;

  /**
   * flush gets a batch and answers one result per item, in the same order. When it throws, the
   * batch's items are tried one by one (opts.single) or rejected with its error; the batches after
   * it still run.
   */
  constructor(private readonly flush: (items: In[]) => Promise<Out[]>, private readonly opts: BatcherOptions<In, Out>) {
    if (!(opts.maxSize >= 1)) throw new RangeError("maxSize must be at least 1");
  }

  add(item: In): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      this.#queue.push({ item, resolve, reject });
      if (!this.#running) {
        this.#running = true;
        // The current turn's other calls join this batch.
        setTimeout(() => this.#drain(), 0);
      }
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        const batch = this.#queue.splice(0, this.opts.maxSize);
        let outs: Out[];
        try {
          outs = await this.flush(batch.map((w) => w.item));
          if (outs.length !== batch.length) {
            throw new Error(`a batch of ${batch.length} got ${outs.length} results`);
          }
        } catch (err) {
          const single = this.opts.single;
          if (single && batch.length > 1) {
            await Promise.all(batch.map((w) => single(w.item).then(w.resolve, w.reject)));
          } else {
            for (const w of batch) w.reject(err);
          }
          continue;
        }
        batch.forEach((w, i) => w.resolve(outs[i]));
      }
    } finally {
      this.#running = false;
    }
  }
}
