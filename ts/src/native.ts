/**
 * The generated napi-rs binding, and helpers to call it with errors mapped to
 * {@link QuarryError}s. Internal: users import from the package root.
 * @internal
 * @module
 */
import binding from '../native/binding.cjs';
import { fromNative } from './errors.js';

/** The raw native functions. */
export const native = binding;

/** Calls a sync native function, mapping thrown errors. */
export function call<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw fromNative(err);
  }
}

/** Calls an async native function, mapping the rejection (and any sync throw). */
export async function callAsync<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fromNative(err);
  }
}
