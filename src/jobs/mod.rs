//! Background and on-demand jobs. Each job is one file with an idempotent entry point.

pub mod background;
pub mod key_rotation;
