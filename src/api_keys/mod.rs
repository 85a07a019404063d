//! API clients and keys (being written).
