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

const byCode: Record<string, new (message: string, options?: { cause?: unknown }) => QuarryError> = {
  QUARRY_INVALID_ARGUMENT: InvalidArgumentError,
  QUARRY_DIM_MISMATCH: DimensionMismatchError,
  QUARRY_DTYPE_MISMATCH: DtypeMismatchError,
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
