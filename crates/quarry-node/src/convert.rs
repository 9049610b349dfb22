//! JS byte views to typed core slices.
//!
//! The facade passes every vector argument as a `Uint8Array` view over the
//! caller's typed array plus a dtype name; here it becomes a typed slice,
//! borrowed when the view is aligned for the element type, copied otherwise.

use crate::errors::{Result, node_error, invalid_argument};
use napi::bindgen_prelude::{TypedArray, TypedArrayType};
use half::{bf16, f16};
use quarry_simd::VectorsRef;
use std::borrow::Cow;

/// Dtype names by the numeric code the facade passes (its `DTYPE_CODES`).
pub const DTYPES: [&str; 6] = ["f32", "f16", "bf16", "i8", "u8", "binary"];

/// Vector elements of one dtype, borrowed from JS or owned.
pub enum Elements<'a> {
    F32(Cow<'a, [f32]>),
    F16(Cow<'a, [f16]>),
    BF16(Cow<'a, [bf16]>),
    I8(Cow<'a, [i8]>),
    U8(Cow<'a, [u8]>),
    Bits(Cow<'a, [u8]>),
}

fn cast<'a, T: bytemuck::Pod>(bytes: &'a [u8], dtype: &str) -> Result<Cow<'a, [T]>> {
    let size = std::mem::size_of::<T>();
    if !bytes.len().is_multiple_of(size) {
        return Err(invalid_argument(format!("{} bytes are not a whole number of {dtype} elements", bytes.len())));
    }
    Ok(match bytemuck::try_cast_slice(bytes) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(bytemuck::allocation::pod_collect_to_vec(bytes)),
    })
}

impl<'a> Elements<'a> {
    /// Interprets `bytes` as elements of `dtype` (`f32`, `f16`, `bf16`, `i8`, `u8`, `binary`).
    pub fn from_bytes(bytes: &'a [u8], dtype: &str) -> Result<Self> {
        Ok(match dtype {
            "f32" => Elements::F32(cast(bytes, dtype)?),
            "f16" => Elements::F16(cast(bytes, dtype)?),
            "bf16" => Elements::BF16(cast(bytes, dtype)?),
            "i8" => Elements::I8(Cow::Borrowed(bytemuck::cast_slice(bytes))),
            "u8" => Elements::U8(Cow::Borrowed(bytes)),
            "binary" => Elements::Bits(Cow::Borrowed(bytes)),
            other => {
                return Err(invalid_argument(format!(
                    "unknown dtype '{other}' (expected f32, f16, bf16, i8, u8 or binary)"
                )));
            }
        })
    }

    /// Reads a JS typed array as elements of the dtype with code `dtype`
    /// (index into [`DTYPES`]), checking the array kind can hold it.
    pub fn from_typed(array: &'a TypedArray<'a>, dtype: u32) -> Result<Self> {
        let name = *DTYPES
            .get(dtype as usize)
            .ok_or_else(|| invalid_argument(format!("unknown dtype code {dtype}")))?;
        let fits = matches!(
            (array.typed_array_type, name),
            (TypedArrayType::Float32, "f32")
                | (TypedArrayType::Uint16, "f16" | "bf16")
                | (TypedArrayType::Int8, "i8")
                | (TypedArrayType::Uint8, "u8" | "binary")
        );
        if !fits {
            return Err(node_error(
                "QUARRY_DTYPE_MISMATCH",
                format!("a {:?} typed array cannot hold dtype '{name}'", array.typed_array_type),
            ));
        }
        Self::from_bytes(&array.arraybuffer, name)
    }

    /// Copies borrowed data so it can leave the JS call (async tasks).
    pub fn into_owned(self) -> Elements<'static> {
        match self {
            Elements::F32(c) => Elements::F32(Cow::Owned(c.into_owned())),
            Elements::F16(c) => Elements::F16(Cow::Owned(c.into_owned())),
            Elements::BF16(c) => Elements::BF16(Cow::Owned(c.into_owned())),
            Elements::I8(c) => Elements::I8(Cow::Owned(c.into_owned())),
            Elements::U8(c) => Elements::U8(Cow::Owned(c.into_owned())),
            Elements::Bits(c) => Elements::Bits(Cow::Owned(c.into_owned())),
        }
    }

    /// The core crate's view.
    pub fn view(&self) -> VectorsRef<'_> {
        match self {
            Elements::F32(c) => VectorsRef::F32(c),
            Elements::F16(c) => VectorsRef::F16(c),
            Elements::BF16(c) => VectorsRef::BF16(c),
            Elements::I8(c) => VectorsRef::I8(c),
            Elements::U8(c) => VectorsRef::U8(c),
            Elements::Bits(c) => VectorsRef::Bits(c),
        }
    }
}
