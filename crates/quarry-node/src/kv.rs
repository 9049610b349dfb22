//! `KvCache`: a quantized KV cache with fused decode attention (`quarry-kv`).
//!
//! The cache sits behind a mutex: `attend` updates the accumulated attention
//! MiKV and H2O rank tokens by, so every call takes it exclusively; the async
//! twin runs the same call on the libuv pool.

use crate::errors::{Result, coded, invalid_argument};
use crate::task::Job;
use napi::bindgen_prelude::{AsyncTask, Float32Array, Uint8Array};
use napi_derive::napi;
use quarry_kv::{KvCache, KvConfig, KvError, Method, Rope, RopeStyle};
use std::sync::{Arc, Mutex, MutexGuard};

impl From<KvError> for crate::errors::Coded {
    fn from(e: KvError) -> Self {
        crate::errors::Coded(crate::errors::node_error(e.code(), &e))
    }
}

/// Options of `new KvCache` (see the facade's `KvCacheOptions`).
#[napi(object)]
pub struct NativeKvOptions {
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub method: String,
    pub bits: Option<u32>,
    pub group_size: Option<u32>,
    pub residual: Option<u32>,
    pub sinks: Option<u32>,
    pub outlier_fraction: Option<f64>,
    pub rank: Option<u32>,
    pub budget: Option<f64>,
    pub rope_theta: Option<f64>,
    pub rope_style: Option<String>,
    pub rotation_block: Option<u32>,
}

fn config(o: &NativeKvOptions) -> Result<KvConfig> {
    let method = Method::from_name(&o.method).map_err(coded)?;
    let mut c = KvConfig::new(o.layers as usize, o.kv_heads as usize, o.head_dim as usize, method);
    if let Some(b) = o.bits {
        c.bits = u8::try_from(b).map_err(|_| invalid_argument(format!("bits {b} out of range")))?;
    }
    if let Some(v) = o.group_size {
        c.group_size = v as usize;
    }
    if let Some(v) = o.residual {
        c.residual = v as usize;
    }
    if let Some(v) = o.sinks {
        c.sinks = v as usize;
    }
    if let Some(v) = o.outlier_fraction {
        c.outlier_fraction = v as f32;
    }
    if let Some(v) = o.rank {
        c.rank = v as usize;
    }
    if let Some(v) = o.budget {
        c.budget = v as f32;
    }
    if let Some(v) = o.rotation_block {
        c.rotation_block = v as usize;
    }
    c.rope = match (o.rope_theta, o.rope_style.as_deref()) {
        (None, None) => None,
        (None, Some(_)) => return Err(invalid_argument("ropeStyle needs ropeTheta")),
        (Some(theta), style) => Some(Rope {
            theta: theta as f32,
            style: match style.unwrap_or("half") {
                "half" => RopeStyle::Half,
                "interleaved" => RopeStyle::Interleaved,
                other => return Err(invalid_argument(format!("ropeStyle must be 'half' or 'interleaved', got '{other}'"))),
            },
        }),
    };
    Ok(c)
}

/// Keys and values of a layer as f32, `[kvHeads, tokens, headDim]`.
#[napi(object)]
pub struct KvTensors {
    pub keys: Float32Array,
    pub values: Float32Array,
}

/// The configuration a cache runs with, defaults filled in.
#[napi(object)]
pub struct KvCacheInfo {
    pub layers: u32,
    pub kv_heads: u32,
    pub head_dim: u32,
    pub method: String,
    pub bits: u32,
    pub group_size: u32,
    pub residual: u32,
    pub sinks: u32,
    pub outlier_fraction: f64,
    pub rank: u32,
    pub budget: f64,
    pub rope_theta: Option<f64>,
    pub rotation_block: u32,
}

#[napi]
pub struct NativeKvCache {
    inner: Arc<Mutex<KvCache>>,
}

fn scale_of(scale: Option<f64>) -> Result<Option<f32>> {
    match scale {
        Some(s) if !(s.is_finite() && s > 0.0) => Err(invalid_argument(format!("scale must be finite and positive, got {s}"))),
        s => Ok(s.map(|s| s as f32)),
    }
}

/// The f64 JS shows for an f32 setting: 0.01, not 0.009999999776.
fn shortest_f64(x: f32) -> f64 {
    x.to_string().parse().unwrap_or(x as f64)
}

impl NativeKvCache {
    fn lock(&self) -> MutexGuard<'_, KvCache> {
        // A panic cannot poison it (core calls return errors), but recover anyway.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[napi]
impl NativeKvCache {
    #[napi(constructor)]
    pub fn new(options: NativeKvOptions) -> Result<Self> {
        let cache = KvCache::new(config(&options)?).map_err(coded)?;
        Ok(NativeKvCache { inner: Arc::new(Mutex::new(cache)) })
    }

    /// Loads a cache saved with `save`, validating it.
    #[napi(factory)]
    pub fn load(path: String) -> Result<Self> {
        let cache = KvCache::load(&path).map_err(coded)?;
        Ok(NativeKvCache { inner: Arc::new(Mutex::new(cache)) })
    }

    /// Learns KVQuant codebooks / RotateKV channel orders of `layer` from sample K/V.
    #[napi]
    pub fn calibrate(&self, layer: u32, keys: Float32Array, values: Float32Array) -> Result<()> {
        self.lock().calibrate(layer as usize, &keys, &values).map_err(coded)
    }

    /// Appends `[kvHeads, tokens, headDim]` keys and values to `layer`.
    #[napi]
    pub fn append(&self, layer: u32, keys: Float32Array, values: Float32Array) -> Result<()> {
        self.lock().append(layer as usize, &keys, &values).map_err(coded)
    }

    /// Decode attention of `[heads, headDim]` queries over the cached layer.
    #[napi]
    pub fn attend(&self, layer: u32, queries: Float32Array, scale: Option<f64>) -> Result<Float32Array> {
        let scale = scale_of(scale)?;
        let out = self.lock().attend(layer as usize, &queries, scale).map_err(coded)?;
        Ok(Float32Array::new(out))
    }

    /// `attend` on the libuv pool.
    #[napi(ts_return_type = "Promise<Float32Array>")]
    pub fn attend_async(&self, layer: u32, queries: Float32Array, scale: Option<f64>) -> Result<AsyncTask<Job<Float32Array>>> {
        let scale = scale_of(scale)?;
        let queries = queries.to_vec();
        let inner = self.inner.clone();
        Ok(AsyncTask::new(Job::new(move || {
            let mut cache = inner.lock().unwrap_or_else(|p| p.into_inner());
            let out = cache.attend(layer as usize, &queries, scale).map_err(coded)?;
            Ok(Float32Array::new(out))
        })))
    }

    /// The layer's keys and values as the cache would attend to them.
    #[napi]
    pub fn dequantize(&self, layer: u32) -> Result<KvTensors> {
        let (k, v) = self.lock().dequantize(layer as usize).map_err(coded)?;
        Ok(KvTensors { keys: Float32Array::new(k), values: Float32Array::new(v) })
    }

    /// `[kvHeads, tokens]` of `layer`: 1 where the token is still attended (H2O evicts; others keep all).
    #[napi]
    pub fn retained(&self, layer: u32) -> Result<Uint8Array> {
        let r = self.lock().retained(layer as usize).map_err(coded)?;
        Ok(Uint8Array::new(r.into_iter().map(u8::from).collect()))
    }

    /// Tokens appended to `layer`.
    #[napi]
    pub fn layer_tokens(&self, layer: u32) -> Result<f64> {
        Ok(self.lock().tokens(layer as usize).map_err(coded)? as f64)
    }

    /// Exact bytes of every layer's stored K/V (codes, scales, outliers, residual).
    #[napi]
    pub fn bytes(&self) -> f64 {
        self.lock().bytes() as f64
    }

    /// Exact bytes of one layer.
    #[napi]
    pub fn layer_bytes(&self, layer: u32) -> Result<f64> {
        Ok(self.lock().layer_bytes_of(layer as usize).map_err(coded)? as f64)
    }

    /// Saves atomically in the versioned cache format.
    #[napi]
    pub fn save(&self, path: String) -> Result<()> {
        self.lock().save(&path).map_err(coded)
    }

    #[napi]
    pub fn info(&self) -> KvCacheInfo {
        let cache = self.lock();
        let c = cache.config();
        KvCacheInfo {
            layers: c.layers as u32,
            kv_heads: c.kv_heads as u32,
            head_dim: c.head_dim as u32,
            method: c.method.name().to_string(),
            bits: c.bits as u32,
            group_size: c.group_size as u32,
            residual: c.residual as u32,
            sinks: c.sinks as u32,
            outlier_fraction: shortest_f64(c.outlier_fraction),
            rank: c.rank as u32,
            budget: shortest_f64(c.budget),
            rope_theta: c.rope.map(|r| r.theta as f64),
            rotation_block: c.rotation_block as u32,
        }
    }
}
