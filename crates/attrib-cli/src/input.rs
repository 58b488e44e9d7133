//! Model inputs from the command line: `.npy` arrays, image files or folders of images, with
//! torchvision-style preprocessing (`--resize`, `--center-crop`, `--normalize`, `--channels`).
//! Shared by `explain` and `compare`.

use attrib::convert::read_npy_tensor;
use attrib::images::{is_image_path, load_batch, unsupported_image_format};
use attrib::{ImageTransform, Normalize, Resize, Result};
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Input flags.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Input: a float32 .npy file (batch first), a PNG/JPEG image, or a folder of images (one
    /// batch, sorted by name). Repeat for models with several inputs, in order.
    #[arg(long, required = true)]
    pub input: Vec<PathBuf>,
    /// Images: resize the shorter side to N, or to exactly HxW (torchvision `Resize`, antialiased).
    #[arg(long)]
    pub resize: Option<String>,
    /// Images: centre crop to N or HxW (torchvision `CenterCrop`).
    #[arg(long = "center-crop")]
    pub center_crop: Option<String>,
    /// Images: normalise with `imagenet`, `MEAN,STD` or `m1,..,mC,s1,..,sC` (torchvision `Normalize`).
    #[arg(long)]
    pub normalize: Option<String>,
    /// Images: convert to 1 (grey) or 3 (RGB) channels.
    #[arg(long)]
    pub channels: Option<usize>,
}

/// Loaded inputs, with what a person should see for each (image inputs before normalisation).
pub struct Loaded {
    /// Model inputs.
    pub tensors: Vec<Tensor>,
    /// Per input: the image before normalisation, `[N, C, H, W]` in `[0, 1]`, for heat-map
    /// overlays; for .npy inputs the array itself.
    pub display: Vec<Tensor>,
    /// Per input: the image files of each row (empty for .npy inputs).
    pub files: Vec<Vec<PathBuf>>,
}

impl InputArgs {
    /// The preprocessing of image inputs, without normalisation, and the normalisation.
    pub(crate) fn transforms(&self) -> Result<(ImageTransform, Option<Normalize>)> {
        let geometry = ImageTransform {
            channels: self.channels,
            resize: self.resize.as_deref().map(str::parse::<Resize>).transpose()?,
            center_crop: self.center_crop.as_deref().map(attrib::tensor::transform::parse_crop).transpose()?,
            normalize: None,
        };
        let normalize = self.normalize.as_deref().map(str::parse::<Normalize>).transpose()?;
        Ok((geometry, normalize))
    }

    /// Read every input onto `device`.
    pub fn load(&self, device: Device) -> Result<Loaded> {
        let (geometry, normalize) = self.transforms()?;
        let mut loaded = Loaded { tensors: Vec::new(), display: Vec::new(), files: Vec::new() };
        for path in &self.input {
            // A folder, or an image by its extension (formats attrib does not decode included,
            // so that they get an error that says so, not a `.npy` parse error).
            if path.is_dir() || is_image_path(path) || unsupported_image_format(path).is_some() {
                let (display, files) = load_batch(path, &geometry, device)?;
                let x = match &normalize {
                    Some(n) => n.apply_to_batch(&display)?,
                    None => display.shallow_clone(),
                };
                loaded.tensors.push(x);
                loaded.display.push(display);
                loaded.files.push(files);
            } else {
                let x = read_npy_tensor(path, device)?;
                loaded.display.push(x.shallow_clone());
                loaded.tensors.push(x);
                loaded.files.push(Vec::new());
            }
        }
        Ok(loaded)
    }
}
