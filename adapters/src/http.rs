//! http adapter (in progress).
