//! The error type of attrib-viz.

use std::path::PathBuf;

/// Everything that can go wrong while validating parameters, rendering or writing an image.
///
/// Every message says what was wrong and how to fix it; no function of this crate panics on
/// bad input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VizError {
    /// A parameter is outside its valid range.
    #[error("invalid parameter `{name}`: {reason}")]
    InvalidParameter {
        /// Name of the parameter (the field of the params struct).
        name: &'static str,
        /// What was wrong and what is accepted.
        reason: String,
    },

    /// A name given to a `FromStr` parser is not known.
    #[error("unknown {kind} `{given}`; expected one of: {expected}")]
    UnknownName {
        /// What was being parsed (`visualisation method`, `sign`, `colormap`).
        kind: &'static str,
        /// The string that was given.
        given: String,
        /// The accepted names, comma separated.
        expected: &'static str,
    },

    /// Attribution and image (or names and values) do not fit together.
    #[error("shape mismatch: {0}")]
    ShapeMismatch(String),

    /// An array has no elements.
    #[error("{what} is empty (shape {shape:?}); pass at least one element in every dimension")]
    Empty {
        /// Which array.
        what: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },

    /// An array holds NaN or infinity.
    #[error("{what} contains {count} non-finite value(s) (NaN or inf); clean the values (e.g. replace NaN by 0) before rendering")]
    NonFinite {
        /// Which array.
        what: &'static str,
        /// How many values are not finite.
        count: usize,
    },

    /// The method needs the original image and none was given.
    #[error("method `{method}` needs the original image; pass `Some(image)` (CHW, values in [0, 1] or [0, 255]) or use `heat_map`")]
    MissingImage {
        /// The method that needs the image.
        method: &'static str,
    },

    /// The output image would be too large to allocate.
    #[error("output image of {width} x {height} pixels is too large (limit {limit} pixels per side); lower `scale`, the gap or the number of panels")]
    TooLarge {
        /// Requested width in pixels.
        width: u64,
        /// Requested height in pixels.
        height: u64,
        /// The limit per side.
        limit: u64,
    },

    /// An image file cannot be read or decoded.
    #[error("cannot read image {path:?}: {reason}; check that the file exists, is readable and is a PNG or JPEG")]
    Read {
        /// The path that was given.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },

    /// An image file cannot be written.
    #[error("cannot write image {path:?}: {reason}; check that the folder exists and is writable (the file is written as PNG whatever its extension)")]
    Write {
        /// The path that was given.
        path: PathBuf,
        /// The underlying error.
        reason: String,
    },
}
