//! Image preprocessing that matches torchvision's transforms on float tensors:
//! `Resize` (bilinear, `antialias=True`), `CenterCrop` and `Normalize`, on one CHW image.
//!
//! The resize is the separable triangle-filter resampling that PyTorch's
//! `interpolate(mode="bilinear", antialias=True, align_corners=False)` (and PIL's bilinear)
//! use: for output index `i` along an axis of scale `s = in / out`, the centre is
//! `c = s·(i + ½)`, the support is `max(s, 1)`, the taps are input indices
//! `⌊c − support + ½⌋ ≤ j < ⌊c + support + ½⌋` (clamped to the image) with weights
//! `max(0, 1 − |(j − c + ½) / max(s, 1)|)`, normalised to sum to 1. On images decoded from
//! 8-bit files, torchvision's PIL path rounds to 8 bits after resizing while this works in
//! `f32`, a difference of at most half a grey level before normalisation.

use attrib_core::{AttribError, Result};
use ndarray::{s, Array2, Array3, Axis};
use std::str::FromStr;

/// How to resize (torchvision's `Resize(size)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resize {
    /// `Resize(n)`: the shorter side becomes `n`, the longer keeps the aspect ratio
    /// (`⌊n · long / short⌋`).
    ShorterSide(usize),
    /// `Resize((h, w))`: exactly `h × w`.
    Exact(usize, usize),
}

impl FromStr for Resize {
    type Err = AttribError;
    /// `N` or `HxW`.
    fn from_str(s: &str) -> Result<Resize> {
        let bad = || AttribError::param("resize", format!("`{s}` is not a size: use N (shorter side) or HxW"));
        match s.split_once(['x', 'X']) {
            Some((h, w)) => {
                let (h, w) = (h.trim().parse::<usize>().map_err(|_| bad())?, w.trim().parse::<usize>().map_err(|_| bad())?);
                if h == 0 || w == 0 {
                    return Err(bad());
                }
                Ok(Resize::Exact(h, w))
            }
            None => match s.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Resize::ShorterSide(n)),
                _ => Err(bad()),
            },
        }
    }
}

impl Resize {
    /// Output `(height, width)` for an input of `h × w`, as torchvision computes it.
    pub fn output_size(self, h: usize, w: usize) -> (usize, usize) {
        match self {
            Resize::Exact(oh, ow) => (oh, ow),
            Resize::ShorterSide(n) => {
                let (short, long) = if w <= h { (w, h) } else { (h, w) };
                // Saturating: a size too large to compute is refused by the pixel limit.
                let new_long = ((n as u128 * long as u128) / short.max(1) as u128).min(usize::MAX as u128) as usize;
                if w <= h {
                    (new_long, n)
                } else {
                    (n, new_long)
                }
            }
        }
    }
}

/// Most pixels (height × width) that a resize may produce: 2²⁸, e.g. 16384 × 16384. A larger
/// `--resize` is an error, as is one whose working memory (about `4 · C · (H · W_out + 3 · H_out
/// · W_out)` bytes) exceeds the memory the system reports as available; never an allocation
/// failure that aborts the process.
pub const MAX_RESIZE_PIXELS: u64 = 1 << 28;

/// Refuse a resize of a `c × h × w` image to `oh × ow` that is too large to hold.
fn check_resize(c: usize, h: usize, w: usize, oh: usize, ow: usize) -> Result<()> {
    let pixels = (oh as u128) * (ow as u128);
    if pixels > MAX_RESIZE_PIXELS as u128 {
        return Err(AttribError::param(
            "resize",
            format!(
                "resizing {h}x{w} to {oh}x{ow} gives {pixels} pixels, more than the limit of {MAX_RESIZE_PIXELS} (16384 x 16384); choose a smaller size"
            ),
        ));
    }
    let bytes = 4 * (c as u128) * ((h as u128) * (ow as u128) + 3 * pixels);
    if let Some(available) = crate::memory::available_host_memory() {
        if bytes > available as u128 {
            return Err(AttribError::param(
                "resize",
                format!(
                    "resizing {h}x{w} to {oh}x{ow} needs about {} MiB of memory but {} MiB are available; choose a smaller size",
                    bytes >> 20,
                    available >> 20
                ),
            ));
        }
    }
    Ok(())
}

/// Per-channel normalisation `(x − mean[c]) / std[c]` (torchvision's `Normalize`).
#[derive(Debug, Clone, PartialEq)]
pub struct Normalize {
    /// Mean per channel (one value: all channels).
    pub mean: Vec<f32>,
    /// Standard deviation per channel (one value: all channels).
    pub std: Vec<f32>,
}

impl Normalize {
    /// ImageNet statistics, as torchvision's pretrained models expect.
    pub fn imagenet() -> Normalize {
        Normalize { mean: vec![0.485, 0.456, 0.406], std: vec![0.229, 0.224, 0.225] }
    }

    fn at(v: &[f32], c: usize) -> f32 {
        if v.len() == 1 {
            v[0]
        } else {
            v[c]
        }
    }
}

impl Normalize {
    /// Normalise a batch `[N, C, ...]` in place of a copy: `(x − mean[c]) / std[c]`.
    pub fn apply_to_batch(&self, x: &tch::Tensor) -> Result<tch::Tensor> {
        use attrib_core::TorchResultExt;
        let size = x.size();
        if size.len() < 2 {
            return Err(AttribError::param("normalize", format!("needs a batch [N, C, ...], got shape {size:?}")));
        }
        let c = size[1] as usize;
        for v in [&self.mean, &self.std] {
            if v.len() != 1 && v.len() != c {
                return Err(AttribError::param("normalize", format!("{} values per statistic for {c} channel(s)", v.len())));
            }
        }
        let mut shape = vec![1i64; size.len()];
        shape[1] = -1;
        let stat = |v: &[f32]| {
            tch::Tensor::f_from_slice(v)
                .and_then(|t| t.f_to_device(x.device()))
                .and_then(|t| t.f_to_kind(x.kind()))
                .and_then(|t| t.f_reshape(&shape))
        };
        stat(&self.mean)
            .and_then(|m| x.f_sub(&m))
            .and_then(|d| d.f_div(&stat(&self.std)?))
            .ctx("normalising images")
    }
}

impl FromStr for Normalize {
    type Err = AttribError;
    /// `imagenet`, `MEAN,STD` (all channels), or `m1,..,mC,s1,..,sC`.
    fn from_str(s: &str) -> Result<Normalize> {
        if s.trim().eq_ignore_ascii_case("imagenet") {
            return Ok(Normalize::imagenet());
        }
        let vals: Vec<f32> = s
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| AttribError::param("normalize", format!("`{s}`: use imagenet, MEAN,STD or m1,..,mC,s1,..,sC")))?;
        if vals.len() < 2 || vals.len() % 2 != 0 {
            return Err(AttribError::param("normalize", format!("`{s}`: give as many means as standard deviations")));
        }
        let (mean, std) = vals.split_at(vals.len() / 2);
        if std.iter().any(|&v| v <= 0.0 || !v.is_finite()) || mean.iter().any(|v| !v.is_finite()) {
            return Err(AttribError::param("normalize", format!("`{s}`: standard deviations must be positive and finite")));
        }
        Ok(Normalize { mean: mean.to_vec(), std: std.to_vec() })
    }
}

/// The preprocessing of one image: optional channel conversion, resize, centre crop and
/// normalisation, applied in that order (torchvision's usual `Compose`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageTransform {
    /// Convert to 1 channel (luma, ITU-R 601-2 weights as PIL's `convert("L")`) or 3 (grey
    /// replicated). `None`: keep the image's own channels.
    pub channels: Option<usize>,
    /// Resize.
    pub resize: Option<Resize>,
    /// Centre crop to `(height, width)`.
    pub center_crop: Option<(usize, usize)>,
    /// Normalisation.
    pub normalize: Option<Normalize>,
}

impl ImageTransform {
    /// Apply to a CHW image with values in `[0, 1]`.
    pub fn apply(&self, img: Array3<f32>) -> Result<Array3<f32>> {
        let mut img = match self.channels {
            None => img,
            Some(c) => convert_channels(img, c)?,
        };
        if let Some(r) = self.resize {
            let (h, w) = (img.shape()[1], img.shape()[2]);
            let (oh, ow) = r.output_size(h, w);
            if oh == 0 || ow == 0 {
                return Err(AttribError::param("resize", format!("resizing {h}x{w} with {r:?} gives an empty image")));
            }
            check_resize(img.shape()[0], h, w, oh, ow)?;
            img = resize_bilinear_antialias(&img, oh, ow);
        }
        if let Some((ch, cw)) = self.center_crop {
            img = center_crop(&img, ch, cw)?;
        }
        if let Some(n) = &self.normalize {
            let c = img.shape()[0];
            for v in [&n.mean, &n.std] {
                if v.len() != 1 && v.len() != c {
                    return Err(AttribError::param(
                        "normalize",
                        format!("{} values per statistic for an image with {c} channel(s)", v.len()),
                    ));
                }
            }
            for (k, mut plane) in img.axis_iter_mut(Axis(0)).enumerate() {
                let (m, s) = (Normalize::at(&n.mean, k), Normalize::at(&n.std, k));
                plane.mapv_inplace(|x| (x - m) / s);
            }
        }
        Ok(img)
    }
}

fn convert_channels(img: Array3<f32>, channels: usize) -> Result<Array3<f32>> {
    let c = img.shape()[0];
    match (c, channels) {
        (a, b) if a == b => Ok(img),
        (3, 1) => {
            let l = &img.slice(s![0, .., ..]) * 0.299 + &img.slice(s![1, .., ..]) * 0.587 + &img.slice(s![2, .., ..]) * 0.114;
            Ok(l.insert_axis(Axis(0)))
        }
        (1, 3) => {
            let plane = img.index_axis(Axis(0), 0).to_owned();
            ndarray::stack(Axis(0), &[plane.view(), plane.view(), plane.view()]).map_err(|e| AttribError::Conversion(format!("stacking channels: {e}")))
        }
        (a, b) => Err(AttribError::param("channels", format!("cannot convert a {a}-channel image to {b} channels (use 1 or 3)"))),
    }
}

/// Resampling weights along one axis: for each output index, the first input index and the
/// normalised weights of its taps.
fn axis_weights(input: usize, output: usize) -> Vec<(usize, Vec<f32>)> {
    let scale = input as f64 / output as f64;
    let support = scale.max(1.0);
    let inv = 1.0 / support;
    (0..output)
        .map(|i| {
            let center = scale * (i as f64 + 0.5);
            let lo = ((center - support + 0.5).max(0.0)) as usize;
            let hi = ((center + support + 0.5) as usize).min(input);
            let raw: Vec<f64> = (lo..hi).map(|j| (1.0 - ((j as f64 - center + 0.5) * inv).abs()).max(0.0)).collect();
            let total: f64 = raw.iter().sum();
            let w = raw.iter().map(|v| if total > 0.0 { (v / total) as f32 } else { 0.0 }).collect();
            (lo, w)
        })
        .collect()
}

fn resample_rows(plane: &Array2<f32>, out_w: usize) -> Array2<f32> {
    let (h, w) = plane.dim();
    let weights = axis_weights(w, out_w);
    Array2::from_shape_fn((h, out_w), |(y, x)| {
        let (lo, ws) = &weights[x];
        ws.iter().enumerate().map(|(k, wk)| wk * plane[[y, lo + k]]).sum()
    })
}

/// Resize a CHW image to `out_h × out_w` with antialiased bilinear resampling (see the module
/// docs for the filter), width first then height, as PyTorch does.
pub fn resize_bilinear_antialias(img: &Array3<f32>, out_h: usize, out_w: usize) -> Array3<f32> {
    let planes: Vec<Array2<f32>> = img
        .axis_iter(Axis(0))
        .map(|p| {
            let rows = resample_rows(&p.to_owned(), out_w);
            resample_rows(&rows.t().to_owned(), out_h).t().to_owned()
        })
        .collect();
    let views: Vec<_> = planes.iter().map(|p| p.view()).collect();
    // The planes share one shape, so stacking fails only without planes: an empty image.
    ndarray::stack(Axis(0), &views).unwrap_or_else(|_| Array3::zeros((0, out_h, out_w)))
}

/// Python's `round` (half to even), as torchvision uses for crop offsets.
fn round_half_even(x: f64) -> i64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && (r as i64) % 2 != 0 {
        (r - x.signum()) as i64
    } else {
        r as i64
    }
}

/// Centre crop to `h × w` (torchvision's `CenterCrop`); an error when the image is smaller.
pub fn center_crop(img: &Array3<f32>, h: usize, w: usize) -> Result<Array3<f32>> {
    let (ih, iw) = (img.shape()[1], img.shape()[2]);
    if h == 0 || w == 0 || h > ih || w > iw {
        return Err(AttribError::param(
            "center_crop",
            format!("cannot crop {h}x{w} out of a {ih}x{iw} image; resize first (--resize) or crop less"),
        ));
    }
    let top = round_half_even((ih - h) as f64 / 2.0) as usize;
    let left = round_half_even((iw - w) as f64 / 2.0) as usize;
    Ok(img.slice(s![.., top..top + h, left..left + w]).to_owned())
}

/// Parse a crop size: `N` (square) or `HxW`.
pub fn parse_crop(s: &str) -> Result<(usize, usize)> {
    match s.parse::<Resize>().map_err(|_| AttribError::param("center_crop", format!("`{s}`: use N or HxW")))? {
        Resize::ShorterSide(n) => Ok((n, n)),
        Resize::Exact(h, w) => Ok((h, w)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_resize_keeps_the_image() {
        let img = Array3::from_shape_fn((2, 5, 7), |(c, y, x)| (c * 100 + y * 10 + x) as f32);
        let out = resize_bilinear_antialias(&img, 5, 7);
        assert!(out.iter().zip(img.iter()).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn downscale_by_two_averages_neighbours() {
        // Scale 2: centre at 2i + 1, support 2, taps 2i..2i+3 (clamped), weights (j - c + 0.5)/2.
        let img = Array3::from_shape_fn((1, 1, 4), |(_, _, x)| x as f32);
        let out = resize_bilinear_antialias(&img, 1, 2);
        // i = 0: c = 1, taps j = 0,1,2 with raw weights 0.75, 0.75, 0.25 -> (0*.75 + 1*.75 + 2*.25)/1.75
        let e0 = (0.75 + 0.5) / 1.75;
        // i = 1: c = 3, taps j = 1,2,3 with raw weights 0.25, 0.75, 0.75
        let e1 = (0.25 + 1.5 + 2.25) / 1.75;
        assert!((out[[0, 0, 0]] - e0).abs() < 1e-6 && (out[[0, 0, 1]] - e1).abs() < 1e-6, "{out:?}");
    }

    #[test]
    fn sizes_and_crops_follow_torchvision() {
        assert_eq!(Resize::ShorterSide(224).output_size(480, 640), (224, 298));
        assert_eq!(Resize::ShorterSide(224).output_size(640, 480), (298, 224));
        assert_eq!("32x48".parse::<Resize>().unwrap(), Resize::Exact(32, 48));
        assert!("0".parse::<Resize>().is_err() && "axb".parse::<Resize>().is_err());
        // (5 - 2) / 2 = 1.5 rounds to 2 (half to even); (4 - 1) / 2 = 1.5 -> 2; (6 - 1)/2 = 2.5 -> 2.
        let img = Array3::from_shape_fn((1, 5, 6), |(_, y, x)| (y * 10 + x) as f32);
        let c = center_crop(&img, 2, 1).unwrap();
        assert_eq!(c[[0, 0, 0]], 22.0);
        assert!(center_crop(&img, 6, 1).is_err());
        assert_eq!(round_half_even(0.5), 0);
        assert_eq!(round_half_even(2.5), 2);
        assert_eq!(round_half_even(3.5), 4);
    }

    #[test]
    fn huge_resizes_are_errors_not_aborts() {
        let img = Array3::from_elem((3, 4, 6), 0.5f32);
        for r in ["1000000000", "100000x100000", "18446744073709551615", "4294967296x4294967296"] {
            let t = ImageTransform { resize: Some(r.parse().unwrap()), ..Default::default() };
            let err = t.apply(img.clone()).unwrap_err().to_string();
            assert!(err.contains("more than the limit"), "{r}: {err}");
        }
        assert_eq!(Resize::ShorterSide(usize::MAX).output_size(4, 6).0, usize::MAX);
        let t = ImageTransform { resize: Some("8".parse().unwrap()), ..Default::default() };
        assert_eq!(t.apply(img).unwrap().shape(), &[3, 8, 12]);
    }

    #[test]
    fn normalize_parsing() {
        assert_eq!("imagenet".parse::<Normalize>().unwrap(), Normalize::imagenet());
        assert_eq!("0.5,0.25".parse::<Normalize>().unwrap(), Normalize { mean: vec![0.5], std: vec![0.25] });
        assert!("0.5".parse::<Normalize>().is_err());
        assert!("0.5,0".parse::<Normalize>().is_err());
        let t = ImageTransform { normalize: Some("0.5,0.25".parse().unwrap()), ..Default::default() };
        let out = t.apply(Array3::from_elem((3, 1, 1), 1.0)).unwrap();
        assert!(out.iter().all(|&v| v == 2.0));
        let t = ImageTransform { normalize: Some(Normalize::imagenet()), ..Default::default() };
        assert!(t.apply(Array3::from_elem((1, 2, 2), 1.0)).is_err(), "3 statistics for a grey image");
    }

    #[test]
    fn channel_conversion() {
        let rgb = Array3::from_shape_fn((3, 1, 1), |(c, _, _)| [1.0, 0.5, 0.0][c]);
        let t = ImageTransform { channels: Some(1), ..Default::default() };
        let l = t.apply(rgb).unwrap();
        assert!((l[[0, 0, 0]] - (0.299 + 0.5 * 0.587)).abs() < 1e-6);
        let t = ImageTransform { channels: Some(3), ..Default::default() };
        assert_eq!(t.apply(Array3::from_elem((1, 2, 2), 0.3)).unwrap().shape(), &[3, 2, 2]);
    }
}
