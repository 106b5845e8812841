// Exponential backoff with full jitter: the n-th retry waits a random time between 0 and
// min(cap, base * 2^n). Full jitter spreads reconnecting clients out after an outage, so a
// recovering server is not hit by everyone at the same instant.

/**
 * @typedef {object} BackoffOptions
 * @property {number} baseMs       first ceiling, in milliseconds
 * @property {number} capMs        largest ceiling, in milliseconds
 * @property {number} maxAttempts  retries before giving up (Infinity: never)
 * @property {() => number} [random] source of numbers in [0, 1), for tests
 */

export class Backoff {
  /** @param {BackoffOptions} options */
  constructor(options) {
    this.baseMs = Math.max(1, options.baseMs);
    this.capMs = Math.max(this.baseMs, options.capMs);
    this.maxAttempts = options.maxAttempts;
    this.random = options.random ?? Math.random;
    this.attempt = 0;
  }

  /** The ceiling of the next delay, without jitter. */
  ceiling() {
    // 2^attempt overflows to Infinity for large attempts; min() keeps it at the cap.
    return Math.min(this.capMs, this.baseMs * 2 ** this.attempt);
  }

  /** True once `maxAttempts` retries have been handed out since the last reset. */
  exhausted() {
    return this.attempt >= this.maxAttempts;
  }

  /** The next delay in milliseconds (full jitter), and counts the attempt. */
  next() {
    const delay = Math.floor(this.random() * this.ceiling());
    this.attempt += 1;
    return delay;
  }

  reset() {
    this.attempt = 0;
  }
}
