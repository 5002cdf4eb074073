//! What can go wrong decoding or storing typed data (a view's values, a record's fields, a
//! channel's encoded values): another type than the one asked for, bytes that do not decode, a
//! number that does not fit.
//!
//! An offset outside the data is a bounds error of the segment
//! ([`SegmentError::OutOfBounds`](crate::SegmentError::OutOfBounds)). Wrapped as
//! [`Error::Data`](crate::Error::Data).

/// Typed data's errors.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A typed read found a value of another type than the one asked for.
    #[error("at offset {offset}: expected a value of type {expected}, found one of type {found}")]
    TagMismatch {
        /// Offset of the value's tag.
        offset: u64,
        /// Type asked for.
        expected: &'static str,
        /// What is stored there.
        found: String,
    },

    /// Stored data that cannot be decoded (invalid UTF-8, an impossible bool byte, ...).
    #[error("at offset {offset}: {reason}")]
    InvalidData {
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// A number that does not fit the field or type it is written to.
    #[error("{value} does not fit in {ty}")]
    ValueOutOfRange {
        /// The value.
        value: String,
        /// The type.
        ty: &'static str,
    },
}
