// Gathers concurrent requests for one database call. A request that finds a free slot goes at
// once, alone; those that arrive while every slot is busy wait for the next one to free and then
// go together, at most `maxBatch` at a time. Under no load nothing waits; under load one round
// trip (and one set of statement triggers) serves many requests.

export interface MicroBatcherOptions {
  /** The most items one call applies. */
  maxBatch: number;
  /** Calls under way at once. */
  maxInFlight: number;
}

interface Pending<I, O> {
  item: I;
  resolve: (out: O) => void;
  reject: (err: unknown) => void;
}

export class MicroBatcher<I, O> {
  readonly #waiting: Pending<I, O>[] = [];
  #inFlight = 0;

  /**
   * `apply` gets a batch and answers with one result per item, in the same order. When it
   * throws, every item of that batch fails with the same error: none of them is answered as done.
   */
  constructor(
    private readonly apply: (items: I[]) => Promise<O[]>,
    private readonly opts: MicroBatcherOptions,
  ) {
    if (!(opts.maxBatch >= 1 && opts.maxInFlight >= 1)) throw new RangeError("maxBatch and maxInFlight must be at least 1");
  }

  /** The item's own result, once the batch it went in is applied. */
  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.#waiting.push({ item, resolve, reject });
      this.#next();
    });
  }

  #next(): void {
    while (this.#inFlight < this.opts.maxInFlight && this.#waiting.length > 0) {
      this.#inFlight++;
      void this.#run(this.#waiting.splice(0, this.opts.maxBatch));
    }
  }

  async #run(batch: Pending<I, O>[]): Promise<void> {
    let results: O[] | undefined;
    let failure: unknown;
    try {
      results = await this.apply(batch.map((p) => p.item));
      if (results.length !== batch.length) {
        throw new Error(`a batch of ${batch.length} was answered with ${results.length} results`);
      }
    } catch (err) {
      failure = err;
      results = undefined;
    }
    // The next batch starts before this one's requests are answered.
    this.#inFlight--;
    this.#next();
    if (results === undefined) for (const p of batch) p.reject(failure);
    else batch.forEach((p, k) => p.resolve(results[k]));
  }
}
