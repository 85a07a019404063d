//! Microsoft emulator (in progress).
