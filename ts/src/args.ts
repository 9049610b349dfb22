/**
 * Argument checks shared by the facades: they turn wrong JS types into
 * {@link InvalidArgumentError}s before anything reaches the addon.
 * @internal
 * @module
 */
import { InvalidArgumentError } from './errors.js';

/** `v` as an integer in `min..2^32-1`, or undefined when not given. */
export function uint(name: string, v: number | undefined, min = 0): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isInteger(v) || v < min || v > 0xffff_ffff) {
    throw new InvalidArgumentError(`${name} must be an integer in ${min}..2^32-1, got ${v}`);
  }
  return v;
}

/** `v` as a boolean, or undefined when not given. */
export function bool(name: string, v: boolean | undefined): boolean | undefined {
  if (v !== undefined && typeof v !== 'boolean') throw new InvalidArgumentError(`${name} must be a boolean, got ${String(v)}`);
  return v;
}

/** `v` if it is a Float32Array. */
export function f32(name: string, v: unknown): Float32Array {
  if (!(v instanceof Float32Array)) throw new InvalidArgumentError(`${name} must be a Float32Array`);
  return v;
}
