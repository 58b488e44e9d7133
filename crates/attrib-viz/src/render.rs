//! Rendering one attribution map with one method into an RGBA image.

use std::path::Path;

use image::{Rgba, RgbaImage};
use ndarray::{Array2, Array3, ArrayView2, ArrayView3, Axis};

use crate::colormap::to_byte;
use crate::error::VizError;
use crate::io::save_png;
use crate::normalize::{check_finite_nonempty, normalize_attr};
use crate::params::{ValidVizParams, VizMethod};

/// Largest accepted output width or height, in pixels.
pub const MAX_SIDE: u64 = 16_384;

/// Views an HWC (channels-last) array as CHW without copying.
pub fn hwc_to_chw<'a>(a: ArrayView3<'a, f32>) -> ArrayView3<'a, f32> {
    a.permuted_axes([2, 0, 1])
}

/// Views an HW (single-channel) array as CHW with one channel, without copying.
pub fn hw_to_chw<'a>(a: ArrayView2<'a, f32>) -> ArrayView3<'a, f32> {
    a.insert_axis(Axis(0))
}

/// Puts a CHW image on the 0–255 scale, as Captum does: if its maximum is at most 1 the values
/// are taken to be in [0, 1] and multiplied by 255, otherwise they are taken as 0–255 values.
/// The result is clamped into [0, 255] (unrounded).
pub(crate) fn image_to_255(image: ArrayView3<'_, f32>) -> Array3<f64> {
    let max = image.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let factor = if max <= 1.0 { 255.0 } else { 1.0 };
    image.mapv(|v| (f64::from(v) * factor).clamp(0.0, 255.0))
}

/// Checks an original image against the attribution's height and width.
pub(crate) fn check_image(
    image: ArrayView3<'_, f32>,
    height: usize,
    width: usize,
) -> Result<(), VizError> {
    check_finite_nonempty("original image", image.shape(), image.iter())?;
    let (c, h, w) = image.dim();
    if c != 1 && c != 3 {
        return Err(VizError::ShapeMismatch(format!(
            "the original image has {c} channels (shape {:?}, read as CHW); pass 1 (grey) or 3 (RGB) channels first, e.g. with `hwc_to_chw` for an HWC array",
            image.shape()
        )));
    }
    if (h, w) != (height, width) {
        return Err(VizError::ShapeMismatch(format!(
            "the original image is {h} x {w} (H x W, shape {:?}) but the attribution is {height} x {width}; both are CHW and must have the same height and width",
            image.shape()
        )));
    }
    Ok(())
}

/// The RGB value (0–255, unrounded) of an image pixel; grey images are repeated over R, G, B.
fn rgb_at(img: &Array3<f64>, y: usize, x: usize) -> [f64; 3] {
    if img.dim().0 == 1 {
        let g = img[[0, y, x]];
        [g, g, g]
    } else {
        [img[[0, y, x]], img[[1, y, x]], img[[2, y, x]]]
    }
}

/// The grey background of `blended_heat_map`: the channel mean, min–max stretched to
/// [0, 255] (as matplotlib's `imshow(..., cmap="gray")` does without `vmin`/`vmax`); a
/// constant image keeps its own grey level instead.
pub(crate) fn grey_background(img: &Array3<f64>) -> Array2<f64> {
    let mean = img
        .mean_axis(Axis(0))
        .unwrap_or_else(|| Array2::zeros((img.dim().1, img.dim().2)));
    let lo = mean.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = mean.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if hi > lo {
        mean.mapv(|g| (g - lo) * 255.0 / (hi - lo))
    } else {
        mean
    }
}

/// Checks that an image of `width × height` pixels may be allocated.
pub(crate) fn check_size(width: u64, height: u64) -> Result<(), VizError> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(VizError::TooLarge {
            width,
            height,
            limit: MAX_SIDE,
        });
    }
    Ok(())
}

/// Nearest-neighbour upscale: every pixel becomes a `factor × factor` block.
///
/// Errors when `factor` is 0 or the result would exceed [`MAX_SIDE`] pixels per side.
pub fn upscale(img: &RgbaImage, factor: u32) -> Result<RgbaImage, VizError> {
    if factor == 0 {
        return Err(VizError::InvalidParameter {
            name: "scale",
            reason: "the upscale factor must be at least 1".to_string(),
        });
    }
    if factor == 1 {
        return Ok(img.clone());
    }
    let (w, h) = img.dimensions();
    check_size(
        u64::from(w) * u64::from(factor),
        u64::from(h) * u64::from(factor),
    )?;
    Ok(RgbaImage::from_fn(w * factor, h * factor, |x, y| {
        *img.get_pixel(x / factor, y / factor)
    }))
}

/// Renders one attribution with the validated parameters, at 1 pixel per input pixel, then
/// upscales by `params.scale()`.
///
/// * `attr`: CHW attribution for one image (any number of channels; they are summed).
/// * `image`: CHW original image with 1 or 3 channels and the same height and width, values in
///   [0, 1] or [0, 255] (see below); needed by every method except `heat_map`.
///
/// With `n` the result of [`crate::normalize_attr`], `(vmin, vmax) = sign.value_range()`,
/// `t = (n − vmin) / (vmax − vmin)`, `img` the image on the 0–255 scale (multiplied by 255 when
/// its maximum is ≤ 1, then clamped to [0, 255]) and `round` to the nearest byte:
///
/// * `heat_map`: `RGB = cmap(t)`, opaque.
/// * `blended_heat_map`: `RGB = round(α · cmap(t) + (1 − α) · g)`, opaque, where `α` is
///   `alpha_overlay` and `g` the channel mean of `img` min–max stretched to [0, 255]
///   (unchanged when the image is constant).
/// * `original_image`: `RGB = round(img)`, opaque (grey images repeated over R, G, B).
/// * `masked_image`: `RGB = round(img · n)`, opaque.
/// * `alpha_scaling`: `RGB = round(img)`, `A = round(255 · n)`.
///
/// Errors: empty or non-finite arrays, a missing image for a method that needs one, an image
/// with other than 1 or 3 channels or another height/width, an output above [`MAX_SIDE`].
pub fn render(
    attr: ArrayView3<'_, f32>,
    image: Option<ArrayView3<'_, f32>>,
    params: &ValidVizParams,
) -> Result<RgbaImage, VizError> {
    let method = params.method();
    let sign = params.sign();
    let norm = normalize_attr(attr, sign, params.outlier_perc())?;
    let (height, width) = norm.dim();
    if let Some(img) = image {
        check_image(img, height, width)?;
    } else if method.needs_image() {
        return Err(VizError::MissingImage {
            method: method.name(),
        });
    }
    check_size(
        width as u64 * u64::from(params.scale()),
        height as u64 * u64::from(params.scale()),
    )?;
    let img255 = image.map(image_to_255);
    let cmap = params.cmap();
    let (vmin, vmax) = sign.value_range();
    let t_of = |n: f64| (n - vmin) / (vmax - vmin);

    let mut out = RgbaImage::new(width as u32, height as u32);
    match (method, img255.as_ref()) {
        (VizMethod::HeatMap, _) => {
            for ((y, x), &n) in norm.indexed_iter() {
                let [r, g, b] = cmap.rgb8(t_of(n));
                out.put_pixel(x as u32, y as u32, Rgba([r, g, b, 255]));
            }
        }
        (VizMethod::BlendedHeatMap, Some(img)) => {
            let grey = grey_background(img);
            let a = params.alpha_overlay();
            for ((y, x), &n) in norm.indexed_iter() {
                let heat = cmap.eval(t_of(n));
                let g = grey[[y, x]];
                let px = heat.map(|h| to_byte(a * h + (1.0 - a) * g));
                out.put_pixel(x as u32, y as u32, Rgba([px[0], px[1], px[2], 255]));
            }
        }
        (VizMethod::OriginalImage, Some(img)) => {
            for y in 0..height {
                for x in 0..width {
                    let px = rgb_at(img, y, x).map(to_byte);
                    out.put_pixel(x as u32, y as u32, Rgba([px[0], px[1], px[2], 255]));
                }
            }
        }
        (VizMethod::MaskedImage, Some(img)) => {
            for ((y, x), &n) in norm.indexed_iter() {
                let px = rgb_at(img, y, x).map(|v| to_byte(v * n));
                out.put_pixel(x as u32, y as u32, Rgba([px[0], px[1], px[2], 255]));
            }
        }
        (VizMethod::AlphaScaling, Some(img)) => {
            for ((y, x), &n) in norm.indexed_iter() {
                let px = rgb_at(img, y, x).map(to_byte);
                out.put_pixel(
                    x as u32,
                    y as u32,
                    Rgba([px[0], px[1], px[2], to_byte(255.0 * n)]),
                );
            }
        }
        (_, None) => {
            return Err(VizError::MissingImage {
                method: method.name(),
            })
        }
    }
    upscale(&out, params.scale())
}

/// Renders the original image alone (1 or 3 channels, CHW) at the given upscale factor,
/// with the same 0–255 rule as [`render`].
pub fn render_image(image: ArrayView3<'_, f32>, scale: u32) -> Result<RgbaImage, VizError> {
    let (_, h, w) = image.dim();
    check_image(image, h, w)?;
    check_size(w as u64 * u64::from(scale), h as u64 * u64::from(scale))?;
    let img = image_to_255(image);
    let out = RgbaImage::from_fn(w as u32, h as u32, |x, y| {
        let px = rgb_at(&img, y as usize, x as usize).map(to_byte);
        Rgba([px[0], px[1], px[2], 255])
    });
    upscale(&out, scale)
}

/// [`render`] followed by [`save_png`]: the Rust counterpart of Captum's
/// `visualize_image_attr`, writing a PNG to `path` and returning the rendered image.
pub fn visualize_image_attr(
    attr: ArrayView3<'_, f32>,
    image: Option<ArrayView3<'_, f32>>,
    params: &ValidVizParams,
    path: impl AsRef<Path>,
) -> Result<RgbaImage, VizError> {
    let img = render(attr, image, params)?;
    save_png(&img, path)?;
    Ok(img)
}
