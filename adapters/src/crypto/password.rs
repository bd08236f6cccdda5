//! Password hashing (placeholder while the hasher is written).
