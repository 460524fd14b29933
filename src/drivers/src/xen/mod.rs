//! TODO
pub fn detect() -> Option<&'static str> { None }
