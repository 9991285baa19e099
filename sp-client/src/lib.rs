//! sp-client (coming).
