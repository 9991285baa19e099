//! sp-testkit (coming).
