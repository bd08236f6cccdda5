//! app test support (in progress).
