//! Envelope encryption of secrets at rest (being written).
