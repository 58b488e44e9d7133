//! Pure-Rust rendering of attributions, after Captum's `visualize_image_attr`.
//!
//! The crate works on `ndarray` arrays (no libtorch) and writes PNG files with the `image`
//! crate. Image attributions are **CHW** arrays for one image (channels first, as attrib's
//! tensors); [`hwc_to_chw`] and [`hw_to_chw`] adapt other layouts without copying.
//!
//! # Normalisation
//!
//! With `s(h, w) = Σ_c a(c, h, w)` the channel sum and `v` the values selected by the
//! [`Sign`] (`max(s, 0)`, `max(−s, 0)` or `|s|`), the threshold `T` is the smallest sorted
//! `v` at which the cumulative sum reaches `(100 − outlier_perc) %` of `Σ v`, and the
//! normalised map is `n = clip(s / T, −1, 1)` for `all`, `n = clip(v / T, 0, 1)` otherwise
//! (see [`normalize_attr`]).
//!
//! # Methods
//!
//! `heat_map` (`cmap(n)`), `blended_heat_map` (heat map over a grey image with opacity
//! `alpha_overlay`), `original_image`, `masked_image` (`image · n`) and `alpha_scaling`
//! (`n` as alpha); see [`VizMethod`] and [`render`]. Colormaps are in [`Colormap`].
//!
//! # Example
//!
//! ```
//! use attrib_viz::{render, Sign, VizMethod, VizParams};
//! use ndarray::array;
//!
//! // One-channel 2 x 2 attribution and a grey image with values in [0, 1].
//! let attr = array![[[0.0f32, 1.0], [-2.0, 4.0]]];
//! let image = array![[[0.0f32, 1.0], [1.0, 1.0]]];
//! let params = VizParams::new(VizMethod::MaskedImage, Sign::Positive)
//!     .outlier_perc(0.0)
//!     .scale(4)
//!     .check()?;
//! let img = render(attr.view(), Some(image.view()), &params)?;
//! assert_eq!(img.dimensions(), (8, 8));
//! // Bottom-right: attribution 4 is the maximum, so n = 1 and the white pixel stays white.
//! assert_eq!(img.get_pixel(7, 7).0, [255, 255, 255, 255]);
//! // Top-right: n = 1 / 4, so 255 · 0.25 = 63.75 rounds to 64.
//! assert_eq!(img.get_pixel(7, 0).0, [64, 64, 64, 255]);
//! # Ok::<(), attrib_viz::VizError>(())
//! ```
#![warn(missing_docs)]

mod bar;
mod colormap;
mod error;
mod grid;
mod io;
mod normalize;
mod params;
mod render;
mod text;

pub use bar::{render_bar_chart, Bar, BarChart, BarChartParams};
pub use colormap::Colormap;
pub use error::VizError;
pub use grid::{compose_row, render_grid, render_panels, Grid, GridParams, Panel};
pub use io::{load_image, png_bytes, save_png, stage_png, MAX_DECODE_BYTES};
pub use normalize::{cumulative_sum_threshold, normalize_attr};
pub use params::{Sign, ValidVizParams, VizMethod, VizParams, MAX_SCALE};
pub use render::{
    hw_to_chw, hwc_to_chw, render, render_image, upscale, visualize_image_attr, MAX_SIDE,
};

pub use text::{escape_html, render_text_html, render_text_page, token_color, TextRow};

/// Re-export of the `image` crate's RGBA buffer type returned by the renderers.
pub use image::RgbaImage;

/// Runs the Rust examples of `docs/visualization.md` as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/visualization.md")]
pub struct VisualizationDoc;
