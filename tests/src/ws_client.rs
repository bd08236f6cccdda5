//! ws_client test support (in progress).
