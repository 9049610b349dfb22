pub mod bits;
mod buf;
pub mod error;
mod format;
pub mod wm;
