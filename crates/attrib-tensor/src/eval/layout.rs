//! Memory layouts of a chunk's image-like inputs: [`Layout`] and the channels-last conversion.

use attrib_core::{Result, TorchResultExt};
use tch::Tensor;

/// The memory layout of the image-like inputs of one chunk (see [`MemoryFormat`]).
///
/// [`MemoryFormat`]: attrib_core::MemoryFormat
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As built: row-major contiguous.
    Contiguous,
    /// Channels last for every 4-D and 5-D floating-point input with more than one channel.
    ChannelsLast,
}

/// Whether a tensor has an image-like shape that a channels-last layout can change.
pub fn channels_last_applies(x: &Tensor) -> bool {
    image_like(&x.size(), x.kind())
}

/// [`channels_last_applies`] from a shape and dtype: 4-D or 5-D, more than one channel,
/// floating point.
pub(super) fn image_like(size: &[i64], kind: tch::Kind) -> bool {
    matches!(size.len(), 4 | 5)
        && size[1] > 1
        && matches!(kind, tch::Kind::Half | tch::Kind::Float | tch::Kind::Double | tch::Kind::BFloat16)
}

/// For a rank-`dim` tensor in channels-last layout: the order in which its dimensions are
/// stored (`[0, 2, 3, 1]` for 4-D), and the permutation back to the logical order.
pub fn channels_last_order(dim: usize) -> (Vec<i64>, Vec<i64>) {
    let d = dim as i64;
    let to: Vec<i64> = std::iter::once(0).chain(2..d).chain(std::iter::once(1)).collect();
    let back: Vec<i64> = std::iter::once(0).chain(std::iter::once(d - 1)).chain(1..d - 1).collect();
    (to, back)
}

/// Whether `x` is stored channels-last exactly as [`to_layout`] makes it.
fn is_channels_last(x: &Tensor) -> bool {
    let (to, _) = channels_last_order(x.dim());
    let size = x.size();
    let mut expected = vec![0i64; size.len()];
    let mut acc = 1i64;
    for &d in to.iter().rev() {
        expected[d as usize] = acc;
        acc *= size[d as usize];
    }
    x.stride() == expected
}

/// The inputs of a chunk in `layout` (a copy for the inputs it changes, the same tensors
/// otherwise). Shapes and values are unchanged; only strides differ.
pub fn to_layout(xs: Vec<Tensor>, layout: Layout) -> Result<Vec<Tensor>> {
    if layout == Layout::Contiguous {
        return Ok(xs);
    }
    xs.into_iter()
        .map(|x| {
            if !channels_last_applies(&x) || is_channels_last(&x) {
                return Ok(x);
            }
            let (to, back) = channels_last_order(x.dim());
            x.f_permute(&to).and_then(|t| t.f_contiguous()).and_then(|t| t.f_permute(&back)).ctx("converting inputs to channels-last")
        })
        .collect()
}
