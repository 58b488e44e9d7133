//! Feature masks: integer group ids that say which input elements are perturbed together
//! (segmentation-mask groups, image patches, or one group per scalar feature).

use crate::baseline::broadcast_rows;
use crate::error::{AttribError, Result, TorchResultExt};
use std::collections::BTreeMap;
use tch::{Device, Kind, Tensor};

/// Integer group ids that broadcast (NumPy rules, aligned on the right) to an input tensor.
/// Elements with the same id form one feature and are perturbed together.
///
/// Shapes that broadcast to an input `[N, C, H, W]`: `[H, W]` (one group map shared by channels
/// and rows), `[C, H, W]`, `[1, C, H, W]`, or `[N, 1, H, W]` (one map per row), and so on.
/// Ids must be non-negative; they need not be contiguous.
#[derive(Debug)]
pub struct FeatureMask {
    ids: Tensor,
}

impl FeatureMask {
    /// Wrap a tensor of group ids (any integer dtype; stored as int64).
    pub fn new(ids: Tensor) -> Result<FeatureMask> {
        if ids.is_floating_point() {
            let rounded = ids.f_round().ctx("checking mask ids")?;
            let exact = rounded.f_eq_tensor(&ids).and_then(|t| t.f_all()).ctx("checking mask ids")?;
            if !bool::try_from(&exact).ctx("checking mask ids")? {
                return Err(AttribError::MaskShape {
                    input: 0,
                    reason: "mask values must be integer group ids, found fractional values".into(),
                });
            }
        }
        let ids = ids.f_to_kind(Kind::Int64).ctx("converting the mask to int64")?;
        if ids.numel() == 0 {
            return Err(AttribError::MaskShape { input: 0, reason: "the mask is empty".into() });
        }
        let min = i64::try_from(&ids.f_min().ctx("mask minimum")?).ctx("mask minimum")?;
        if min < 0 {
            return Err(AttribError::MaskShape {
                input: 0,
                reason: format!("mask ids must be >= 0, found {min}"),
            });
        }
        Ok(FeatureMask { ids })
    }

    /// A regular grid of `patch_h × patch_w` patches over an `height × width` image, numbered
    /// row-major from 0; the last row/column of patches may be smaller. Shape `[height, width]`,
    /// so it is shared by every channel and every row of the batch.
    pub fn grid(height: i64, width: i64, patch_h: i64, patch_w: i64) -> Result<FeatureMask> {
        if height <= 0 || width <= 0 {
            return Err(AttribError::param("grid", format!("image size {height}x{width} must be positive")));
        }
        if patch_h <= 0 || patch_w <= 0 {
            return Err(AttribError::param("grid", format!("patch size {patch_h}x{patch_w} must be positive")));
        }
        let cols = (width + patch_w - 1) / patch_w;
        let ctx = "numbering grid patches";
        let r = Tensor::f_arange(height, (Kind::Int64, Device::Cpu)).and_then(|t| t.f_divide_scalar_mode(patch_h, "floor")).ctx(ctx)?;
        let c = Tensor::f_arange(width, (Kind::Int64, Device::Cpu)).and_then(|t| t.f_divide_scalar_mode(patch_w, "floor")).ctx(ctx)?;
        let ids = r
            .f_unsqueeze(1)
            .and_then(|r| r.f_mul_scalar(cols))
            .and_then(|r| r.f_add(&c.f_unsqueeze(0)?))
            .ctx(ctx)?;
        Ok(FeatureMask { ids })
    }

    /// One group per distinct label of a label image (`[H, W]`, or any shape), relabelled to
    /// `0..G` in increasing order of the original labels. Negative labels are allowed here and
    /// keep their order.
    pub fn from_labels(labels: &Tensor) -> Result<FeatureMask> {
        if labels.numel() == 0 {
            return Err(AttribError::MaskShape { input: 0, reason: "the label image is empty".into() });
        }
        let flat = labels
            .f_to_kind(Kind::Int64)
            .and_then(|t| t.f_to_device(Device::Cpu))
            .and_then(|t| t.f_reshape([-1]))
            .ctx("reading labels")?;
        let host = Vec::<i64>::try_from(&flat).ctx("reading labels")?;
        let mut map = BTreeMap::new();
        for &v in &host {
            map.entry(v).or_insert(0i64);
        }
        for (i, v) in map.values_mut().enumerate() {
            *v = i as i64;
        }
        let relabelled: Vec<i64> = host.iter().map(|v| map[v]).collect();
        let ids = Tensor::f_from_slice(&relabelled).and_then(|t| t.f_reshape(labels.size())).ctx("relabelling")?;
        Ok(FeatureMask { ids })
    }

    /// One group per scalar element of a row shaped `row_shape` (Captum's default when no mask
    /// is given): ids `0..prod(row_shape)`, row-major.
    pub fn per_element(row_shape: &[i64]) -> FeatureMask {
        let n: i64 = row_shape.iter().product();
        FeatureMask { ids: Tensor::arange(n, (Kind::Int64, Device::Cpu)).reshape(row_shape) }
    }

    /// The raw ids (int64).
    pub fn ids(&self) -> &Tensor {
        &self.ids
    }

    /// The distinct group ids, sorted.
    pub fn groups(&self) -> Result<Vec<i64>> {
        let flat = self.ids.f_reshape([-1]).and_then(|f| f.f_to_device(Device::Cpu)).ctx("listing mask groups")?;
        let host = Vec::<i64>::try_from(&flat).ctx("listing mask groups")?;
        let set: std::collections::BTreeSet<i64> = host.into_iter().collect();
        Ok(set.into_iter().collect())
    }

    /// Check that the mask broadcasts to `input_shape` (input number `index`) and return the ids
    /// broadcast to it, on `device`, by NumPy's rules ([`crate::baseline::broadcast_rows`]). For
    /// inputs that stack copies of a batch, tile a per-row mask first
    /// ([`crate::baseline::tile_copies`]).
    pub fn broadcast_to(&self, input_shape: &[i64], index: usize, device: Device) -> Result<Tensor> {
        let ids = self.ids.f_to_device(device).ctx("moving the feature mask")?;
        broadcast_rows(&ids, input_shape).map_err(|reason| AttribError::MaskShape { input: index, reason })
    }
}
