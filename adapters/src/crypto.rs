//! crypto adapter (in progress).
