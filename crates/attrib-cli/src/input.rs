//! Model inputs from the command line: `.npy` arrays, image files or folders of images, with
//! torchvision-style preprocessing (`--resize`, `--center-crop`, `--normalize`, `--channels`),
//! and sentences (`--text` with `--vocab`, see [`crate::text`]). Integer `.npy` files are token
//! ids (int64). Shared by `explain` and `compare`.

use attrib::convert::read_npy_tensor;
use attrib::images::{is_image_path, load_batch, unsupported_image_format};
use attrib::{ImageTransform, Normalize, Resize, Result};
use std::path::PathBuf;
use tch::{Device, Tensor};

/// Input flags.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// Input: a float32 .npy file (batch first), an integer .npy of token ids `[N, L]`, a
    /// PNG/JPEG image, or a folder of images (one batch, sorted by name). Repeat for models with
    /// several inputs, in order.
    #[arg(long, required_unless_present = "text")]
    pub input: Vec<PathBuf>,
    /// A sentence, tokenised with --vocab into one row of token ids (int64, rows padded with the
    /// pad id): repeat for several rows. The ids are the model input after the --input ones.
    #[arg(long, requires = "vocab")]
    pub text: Vec<String>,
    /// Vocabulary of --text (a JSON object token -> id with "<pad>" and "<unk>"); with integer
    /// .npy inputs, the tokens shown in the text view.
    #[arg(long)]
    pub vocab: Option<PathBuf>,
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
    /// The vocabulary of `--vocab`.
    pub vocab: Option<crate::text::Vocab>,
}

/// Read a `.npy` input: floats as float32, integers as int64 token ids.
fn read_npy_input(path: &std::path::Path, device: Device) -> Result<Tensor> {
    let header = attrib::convert::read_npy_header(path)?;
    let dtype = header.dtype_name();
    if dtype.starts_with("int") || dtype.starts_with("uint") {
        let ids = attrib::convert::read_npy_i64(path)?;
        return attrib::convert::array_to_tensor_i64(&ids, device);
    }
    read_npy_tensor(path, device)
}

impl InputArgs {
    /// How many model inputs the flags give: the --input files, and one for --text.
    pub fn count(&self) -> usize {
        self.input.len() + usize::from(!self.text.is_empty())
    }

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
        let vocab = self.vocab.as_ref().map(crate::text::Vocab::load).transpose()?;
        let mut loaded = Loaded { tensors: Vec::new(), display: Vec::new(), files: Vec::new(), vocab: None };
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
                let x = read_npy_input(path, device)?;
                loaded.display.push(x.shallow_clone());
                loaded.tensors.push(x);
                loaded.files.push(Vec::new());
            }
        }
        if let (false, Some(v)) = (self.text.is_empty(), &vocab) {
            let ids = v.encode_batch(&self.text, device)?;
            loaded.display.push(ids.shallow_clone());
            loaded.tensors.push(ids);
            loaded.files.push(Vec::new());
        }
        loaded.vocab = vocab;
        Ok(loaded)
    }
}
