//! Background and on-demand jobs. Each job is one file with an idempotent entry point.

pub mod background;
pub mod housekeeping;
pub mod keep_alive;
pub mod key_rotation;
