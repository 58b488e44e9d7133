//! Reading images into arrays and writing rendered images as PNG.

use std::io::Write;
use std::path::Path;

use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder, ImageError, ImageReader, Limits, RgbaImage};
use ndarray::Array3;

use crate::error::VizError;

/// Most bytes the decoder may allocate for one image file (the decoded 8-bit pixels): 512 MiB,
/// the `image` crate's default, set here explicitly. A larger (or corrupt) file is an error, not an
/// allocation failure; [`load_image`] then holds the image as `f32`, four times as many bytes.
pub const MAX_DECODE_BYTES: u64 = 512 << 20;

/// Encode `img` as PNG into `w`: 8-bit RGB when fully opaque, else 8-bit RGBA.
fn encode_png(img: &RgbaImage, w: &mut dyn Write) -> std::io::Result<()> {
    let (width, height) = img.dimensions();
    let opaque = img.pixels().all(|p| p.0[3] == 255);
    let encoder = PngEncoder::new(w);
    let result = if opaque {
        let rgb: Vec<u8> = img.as_raw().chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        encoder.write_image(&rgb, width, height, ExtendedColorType::Rgb8)
    } else {
        encoder.write_image(img.as_raw(), width, height, ExtendedColorType::Rgba8)
    };
    result.map_err(|e| match e {
        ImageError::IoError(e) => e,
        other => std::io::Error::other(other.to_string()),
    })
}

fn write_err(path: &Path, e: std::io::Error) -> VizError {
    VizError::Write {
        path: path.to_path_buf(),
        reason: attrib_fs::io_reason(&e),
    }
}

/// Writes `img` as a PNG file at `path` (the content is PNG whatever the extension).
///
/// A fully opaque image is written as 8-bit RGB, any other as 8-bit RGBA (so
/// `alpha_scaling` keeps its alpha channel). The file is replaced atomically: written to a
/// temporary file in the same folder, synced, then renamed over `path`, so a failed write (a
/// full disk, an interrupted process) leaves the previous file intact. Errors with
/// [`VizError::Write`] when the file cannot be created or encoded (missing folder, no
/// permission).
pub fn save_png(img: &RgbaImage, path: impl AsRef<Path>) -> Result<(), VizError> {
    let path = path.as_ref();
    stage_png(img, path)?.commit().map_err(|e| write_err(path, e))
}

/// `img` encoded as a PNG file in memory, as [`save_png`] writes it (8-bit RGB when fully
/// opaque, else RGBA): for writers that embed the image or stage several files.
pub fn png_bytes(img: &RgbaImage) -> Result<Vec<u8>, VizError> {
    let mut out = Vec::new();
    encode_png(img, &mut out).map_err(|e| VizError::Write {
        path: "(memory)".into(),
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// [`save_png`] in two steps, for writers of several files that must all succeed: the PNG is
/// encoded and synced under a temporary name next to `path`; [`attrib_fs::Staged::commit`] puts
/// it in place, and dropping it uncommitted leaves `path` as it was.
pub fn stage_png(img: &RgbaImage, path: impl AsRef<Path>) -> Result<attrib_fs::Staged, VizError> {
    let path = path.as_ref();
    attrib_fs::stage(path, |w| encode_png(img, w)).map_err(|e| write_err(path, e))
}

/// Reads a PNG or JPEG file into a CHW `f32` array with values in [0, 1].
///
/// Grey images (with or without alpha) give 1 channel, colour images 3 channels (alpha is
/// dropped). The result can be passed as the original image to [`crate::render`]. The format is
/// recognised from the file's content (a PNG named `.jpg` reads as PNG). Errors with
/// [`VizError::Read`] when the file is missing, unreadable, not a PNG/JPEG, or would decode to
/// more than [`MAX_DECODE_BYTES`].
pub fn load_image(path: impl AsRef<Path>) -> Result<Array3<f32>, VizError> {
    let path = path.as_ref();
    let read_err = |reason: String| VizError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let mut reader = ImageReader::open(path)
        .map_err(|e| read_err(attrib_fs::io_reason(&e)))?
        .with_guessed_format()
        .map_err(|e| read_err(attrib_fs::io_reason(&e)))?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| match e {
        ImageError::Limits(l) => read_err(format!(
            "{l}: decoding it would take more than {} MiB; downscale the image first",
            MAX_DECODE_BYTES >> 20
        )),
        other => read_err(other.to_string()),
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
