/**
 * Errors thrown by quarry. Every error carries a stable `code` string; catch
 * {@link QuarryError} for all of them or a subclass for one kind.
 * @module
 */

/** Stable error codes. New codes may be added; existing ones never change meaning. */
export type QuarryErrorCode =
  | 'QUARRY_INVALID_ARGUMENT'
  | 'QUARRY_DIM_MISMATCH'
  | 'QUARRY_DTYPE_MISMATCH'
  | 'QUARRY_CORRUPT_INDEX'
  | 'QUARRY_IO'
  | 'QUARRY_ABORTED'
  | 'QUARRY_INVALID_INPUT'
  | 'QUARRY_TOKENIZER'
  | 'QUARRY_UNSUPPORTED'
  | 'QUARRY_TOO_LARGE'
  | 'QUARRY_INTERNAL';

/** Base class of every error quarry throws. */
export class QuarryError extends Error {
  /** Stable, machine-readable error code (e.g. `QUARRY_DIM_MISMATCH`). */
  readonly code: QuarryErrorCode;

  /**
   * @param code - the stable error code
   * @param message - a human-readable description
   */
  constructor(code: QuarryErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** An argument is outside its domain (a `k` of 0, an unknown metric, an unsupported array type, ...). */
export class InvalidArgumentError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_INVALID_ARGUMENT', message, options);
  }
}

/** Lengths disagree: vectors of different length, or a `dim` that does not divide a matrix. */
export class DimensionMismatchError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_DIM_MISMATCH', message, options);
  }
}

/** Operands of different element types (e.g. f32 queries against an i8 matrix). */
export class DtypeMismatchError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_DTYPE_MISMATCH', message, options);
  }
}

/** An index file is truncated, altered or inconsistent; it was rejected before use. */
export class CorruptIndexError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_CORRUPT_INDEX', message, options);
  }
}

/** Reading or writing a file failed (the message names the path). */
export class IoError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_IO', message, options);
  }
}

/** A long operation was stopped through its `AbortSignal`. */
export class AbortedError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_ABORTED', message, options);
  }
}

/** Input data cannot be used (a JSONL line without a string `text`, a tokenizer failing on a document, ...). */
export class InvalidInputError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_INVALID_INPUT', message, options);
  }
}

/** A `tokenizer.json` could not be loaded or used. */
export class TokenizerError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_TOKENIZER', message, options);
  }
}

/** The operation needs something this index or build does not have. */
export class UnsupportedError extends QuarryError {
  /** @param message - what was wrong */
  constructor(message: string, options?: { cause?: unknown }) {
    super('QUARRY_UNSUPPORTED', message, options);
  }
}

const byCode: Record<string, new (message: string, options?: { cause?: unknown }) => QuarryError> = {
  QUARRY_INVALID_ARGUMENT: InvalidArgumentError,
  QUARRY_DIM_MISMATCH: DimensionMismatchError,
  QUARRY_DTYPE_MISMATCH: DtypeMismatchError,
  QUARRY_CORRUPT_INDEX: CorruptIndexError,
  QUARRY_IO: IoError,
  QUARRY_ABORTED: AbortedError,
  QUARRY_INVALID_INPUT: InvalidInputError,
  QUARRY_TOKENIZER: TokenizerError,
  QUARRY_UNSUPPORTED: UnsupportedError,
};

const CODED_MESSAGE = /^\[(QUARRY_[A-Z_]+)\] ([\s\S]*)$/;

/**
 * Converts an error thrown by the native addon into the matching
 * {@link QuarryError} subclass. The addon puts the code in `error.code` (sync
 * calls) and always at the start of the message as `[CODE] ...` (async calls
 * can only reject with a generic status).
 * @internal
 */
export function fromNative(err: unknown): Error {
  if (err instanceof QuarryError || !(err instanceof Error)) return err as Error;
  const m = CODED_MESSAGE.exec(err.message);
  if (!m) return new QuarryError('QUARRY_INTERNAL', err.message, { cause: err });
  const Ctor = byCode[m[1]];
  return Ctor ? new Ctor(m[2], { cause: err }) : new QuarryError(m[1] as QuarryErrorCode, m[2], { cause: err });
}
