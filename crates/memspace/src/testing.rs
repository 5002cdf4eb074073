//! Helpers for the crate's unit tests (compiled only for `cargo test`).

// Under loom only the model tests run, and they need no segment names.
#![cfg_attr(loom, allow(dead_code))]

use crate::location::Location;

/// A POSIX segment name unique to this process and call: `/memspace-unit-{kind}-{tag}-{pid}-{n}`.
pub(crate) fn unique_name(kind: &str, tag: &str) -> String {
    format!(
        "/memspace-unit-{kind}-{tag}-{}-{}",
        std::process::id(),
        crate::sync::next_unique_id()
    )
}

/// [`unique_name`] as a [`Location`].
#[cfg_attr(loom, allow(dead_code))] // its users are not model-checked
pub(crate) fn unique_location(kind: &str, tag: &str) -> Location {
    Location::Name(unique_name(kind, tag))
}
