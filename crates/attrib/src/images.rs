//! Image files as model inputs: PNG/JPEG files or folders of them, decoded to `[0, 1]`
//! (by `attrib-viz`) and preprocessed as torchvision does (by `attrib-tensor`'s transforms).

use attrib_core::{AttribError, Result, TorchResultExt};
use attrib_tensor::convert::array_to_tensor_f32;
use attrib_tensor::transform::ImageTransform;
use ndarray::{Array3, Axis};
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// File extensions read as images.
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

/// Image formats that attrib recognises by extension but does not decode, with their names:
/// such a file gets an error that says so and how to convert it, not a `.npy` parse error.
pub const UNSUPPORTED_IMAGE_EXTENSIONS: &[(&str, &str)] = &[
    ("bmp", "BMP"),
    ("gif", "GIF"),
    ("tif", "TIFF"),
    ("tiff", "TIFF"),
    ("webp", "WebP"),
    ("avif", "AVIF"),
    ("heic", "HEIC"),
    ("ppm", "PPM"),
    ("pgm", "PGM"),
];

/// The name of an image format that `path`'s extension names but attrib does not read
/// (`Some("BMP")` for `x.bmp`), see [`UNSUPPORTED_IMAGE_EXTENSIONS`].
pub fn unsupported_image_format(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    UNSUPPORTED_IMAGE_EXTENSIONS.iter().find(|(e, _)| *e == ext).map(|(_, name)| *name)
}

/// The error for an image in a format attrib does not read: which formats it reads, and how to
/// convert.
fn unsupported(path: &Path, format: &str) -> AttribError {
    AttribError::Io {
        action: "cannot read image",
        path: path.to_path_buf(),
        reason: format!(
            "{format} images are not supported; attrib reads PNG and JPEG images (.png, .jpg, .jpeg) and .npy arrays: convert it, e.g. `python -c \"from PIL import Image; Image.open('{}').convert('RGB').save('image.png')\"`",
            path.display()
        ),
    }
}

/// Metadata of `path`, or an error that says what is wrong: missing, a loop of symbolic links,
/// no permission.
fn stat(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).map_err(|e| AttribError::Io {
        action: "cannot open",
        path: path.to_path_buf(),
        reason: if e.kind() == std::io::ErrorKind::NotFound { "no such file or folder".into() } else { attrib_fs::io_reason(&e) },
    })
}

/// True when `path` names an image file by its extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Read one image as CHW in `[0, 1]` and apply `transform`.
pub fn load_image(path: &Path, transform: &ImageTransform) -> Result<Array3<f32>> {
    if let Some(format) = unsupported_image_format(path) {
        return Err(unsupported(path, format));
    }
    let img = attrib_viz::load_image(path).map_err(|e| AttribError::Io {
        action: "cannot read image",
        path: path.to_path_buf(),
        reason: match e {
            attrib_viz::VizError::Read { reason, .. } => reason,
            other => other.to_string(),
        },
    })?;
    transform.apply(img)
}

/// The image files a path names: the file itself, or the images of a folder sorted by name.
pub fn list_images(path: &Path) -> Result<Vec<PathBuf>> {
    if stat(path)?.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| AttribError::Io {
            action: "cannot list folder",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let all: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        let mut files: Vec<PathBuf> = all.iter().filter(|p| is_image_path(p)).cloned().collect();
        files.sort();
        if files.is_empty() {
            let others: Vec<&str> = all.iter().filter_map(|p| unsupported_image_format(p)).collect();
            let hint = match others.first() {
                Some(f) => format!(
                    " ({} {f} file(s) there: attrib reads PNG and JPEG only; convert them, e.g. with PIL `Image.open(p).convert('RGB').save(p.with_suffix('.png'))`)",
                    others.len()
                ),
                None => String::new(),
            };
            return Err(AttribError::Io {
                action: "no images in",
                path: path.to_path_buf(),
                reason: format!("the folder holds no {} files{hint}", IMAGE_EXTENSIONS.join("/")),
            });
        }
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

/// Load an image file or a folder of images as one batch `[N, C, H, W]` on `device`, with the
/// paths in batch order. All images must have the same size after `transform` (resize and crop
/// them to a common size otherwise).
pub fn load_batch(path: &Path, transform: &ImageTransform, device: Device) -> Result<(Tensor, Vec<PathBuf>)> {
    let files = list_images(path)?;
    let images = files.iter().map(|f| load_image(f, transform)).collect::<Result<Vec<_>>>()?;
    let first = images[0].shape().to_vec();
    if let Some((f, img)) = files.iter().zip(&images).find(|(_, i)| i.shape() != first.as_slice()) {
        return Err(AttribError::InputShape(format!(
            "{} is {:?} after preprocessing but {} is {first:?}; give --resize and --center-crop so all images share a size",
            f.display(),
            img.shape(),
            files[0].display()
        )));
    }
    let views: Vec<_> = images.iter().map(|i| i.view()).collect();
    let batch = ndarray::stack(Axis(0), &views).map_err(|e| AttribError::Conversion(e.to_string()))?.into_dyn();
    let t = array_to_tensor_f32(&batch, device)?;
    let t = t.f_contiguous().ctx("stacking images")?;
    Ok((t, files))
}
