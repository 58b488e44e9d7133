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

/// True when `path` names an image file by its extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

/// Read one image as CHW in `[0, 1]` and apply `transform`.
pub fn load_image(path: &Path, transform: &ImageTransform) -> Result<Array3<f32>> {
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
    if path.is_dir() {
        let entries = std::fs::read_dir(path).map_err(|e| AttribError::Io {
            action: "cannot list folder",
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| is_image_path(p)).collect();
        files.sort();
        if files.is_empty() {
            return Err(AttribError::Io {
                action: "no images in",
                path: path.to_path_buf(),
                reason: format!("the folder holds no {} files", IMAGE_EXTENSIONS.join("/")),
            });
        }
        Ok(files)
    } else if path.exists() {
        Ok(vec![path.to_path_buf()])
    } else {
        Err(AttribError::Io { action: "cannot open", path: path.to_path_buf(), reason: "no such file or folder".into() })
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
