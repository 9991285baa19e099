//! sp-transport (coming).
