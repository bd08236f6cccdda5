//! ws adapter (in progress).
