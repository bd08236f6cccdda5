//! postgres test support (in progress).
