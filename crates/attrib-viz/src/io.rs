//! Reading images into arrays and writing rendered images as PNG.

use std::path::Path;

use image::{DynamicImage, ImageFormat, RgbaImage};
use ndarray::Array3;

use crate::error::VizError;

/// Writes `img` as a PNG file at `path` (the content is PNG whatever the extension).
///
/// A fully opaque image is written as 8-bit RGB, any other as 8-bit RGBA (so
/// `alpha_scaling` keeps its alpha channel). Errors with [`VizError::Write`] when the file
/// cannot be created or encoded (missing folder, no permission).
pub fn save_png(img: &RgbaImage, path: impl AsRef<Path>) -> Result<(), VizError> {
    let path = path.as_ref();
    let opaque = img.pixels().all(|p| p.0[3] == 255);
    let dynamic = if opaque {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img.clone()).to_rgb8())
    } else {
        DynamicImage::ImageRgba8(img.clone())
    };
    dynamic
        .save_with_format(path, ImageFormat::Png)
        .map_err(|e| VizError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Reads a PNG or JPEG file into a CHW `f32` array with values in [0, 1].
///
/// Grey images (with or without alpha) give 1 channel, colour images 3 channels (alpha is
/// dropped). The result can be passed as the original image to [`crate::render`]. Errors with
/// [`VizError::Read`] when the file is missing, unreadable or not a PNG/JPEG.
pub fn load_image(path: impl AsRef<Path>) -> Result<Array3<f32>, VizError> {
    let path = path.as_ref();
    let img = image::open(path).map_err(|e| VizError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    if img.color().has_color() {
        let rgb = img.to_rgb8();
        Ok(Array3::from_shape_fn((3, h, w), |(c, y, x)| {
            f32::from(rgb.get_pixel(x as u32, y as u32).0[c]) / 255.0
        }))
    } else {
        let grey = img.to_luma8();
        Ok(Array3::from_shape_fn((1, h, w), |(_, y, x)| {
            f32::from(grey.get_pixel(x as u32, y as u32).0[0]) / 255.0
        }))
    }
}
