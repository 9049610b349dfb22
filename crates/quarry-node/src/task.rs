//! A generic `AsyncTask`: runs a closure on the libuv pool and hands its
//! result to JS. Core errors carry their code in the message (see `errors`).

use crate::errors::{Result, to_task_error};
use napi::bindgen_prelude::{ToNapiValue, TypeName};
use napi::{Env, Task};

/// Work to run off the event loop, producing a JS-convertible value.
pub struct Job<T: Send + 'static> {
    work: Option<Box<dyn FnOnce() -> Result<T> + Send>>,
}

impl<T: Send + 'static> Job<T> {
    pub fn new(work: impl FnOnce() -> Result<T> + Send + 'static) -> Self {
        Job { work: Some(Box::new(work)) }
    }
}

impl<T: Send + ToNapiValue + TypeName + 'static> Task for Job<T> {
    type Output = T;
    type JsValue = T;

    fn compute(&mut self) -> napi::Result<T> {
        let work = self.work.take().ok_or_else(|| napi::Error::from_reason("job ran twice"))?;
        work().map_err(to_task_error)
    }

    fn resolve(&mut self, _env: Env, output: T) -> napi::Result<T> {
        Ok(output)
    }
}
