//! Segmentation-mask feature groups: label images read from `.npy` or `.png`, and SLIC
//! superpixels computed on the input image.
//!
//! SLIC (Achanta et al. 2012, "SLIC Superpixels Compared to State-of-the-Art Superpixel
//! Methods", IEEE TPAMI 34(11)): `K` cluster centres start on a regular grid of step
//! `S = √(HW / K)`; each iteration assigns every pixel to the centre that minimises
//! `D² = d_c² + (m · d_s / S)²` among the centres within `S` of it (`d_c`: distance of the
//! channel values, `d_s`: spatial distance, `m`: compactness), then moves every centre to the
//! mean of its pixels. Finally connectivity is enforced: every 4-connected piece becomes its own
//! segment, and pieces smaller than `S²/4` are merged into a neighbouring segment.
//!
//! attrib's SLIC works on the channels as given, rescaled jointly to `[0, 100]` (the range of
//! CIELAB lightness, so `compactness` has scikit-image's scale), not on CIELAB colours: inputs
//! are usually normalised tensors, not sRGB images. Segments are numbered `0..k` in raster
//! order. The result is deterministic.

use attrib_core::{AttribError, FeatureMask, Result, TorchResultExt};
use std::collections::VecDeque;
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn io_err(path: &Path, reason: impl ToString) -> AttribError {
    AttribError::Io { action: "cannot read label image", path: path.to_path_buf(), reason: reason.to_string() }
}

/// Read a label image as a [`FeatureMask`] (one group per distinct label, relabelled `0..G`).
///
/// - `.npy`: integer labels of any shape (or floating-point values that are whole numbers);
/// - `.png` / `.jpg` / `.jpeg`: a grayscale image (8 or 16 bits) gives one label per grey level;
///   a colour image one label per distinct RGB colour. Shape `[H, W]`. JPEG is lossy: its
///   colours are rarely exact, so prefer PNG for label images.
pub fn read_label_image(path: impl AsRef<Path>) -> Result<FeatureMask> {
    let path = path.as_ref();
    if !path.exists() {
        return Err(io_err(path, "no such file"));
    }
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    match ext.as_str() {
        "npy" => {
            let labels = match attrib_tensor::convert::read_npy_i64(path) {
                Ok(a) => attrib_tensor::convert::array_to_tensor_i64(&a, Device::Cpu)?,
                Err(_) => {
                    let t = attrib_tensor::convert::read_npy_tensor(path, Device::Cpu)?;
                    let whole = t.f_round().and_then(|r| r.f_eq_tensor(&t)).and_then(|e| e.f_all()).ctx("checking labels")?;
                    if !bool::try_from(&whole).ctx("checking labels")? {
                        return Err(io_err(path, "labels must be whole numbers"));
                    }
                    t.f_to_kind(Kind::Int64).ctx("converting labels")?
                }
            };
            FeatureMask::from_labels(&labels)
        }
        "png" | "jpg" | "jpeg" => {
            let img = image::ImageReader::open(path)
                .map_err(|e| io_err(path, e))?
                .with_guessed_format()
                .map_err(|e| io_err(path, e))?
                .decode()
                .map_err(|e| io_err(path, format!("not a readable image: {e}")))?;
            let (w, h) = (img.width() as i64, img.height() as i64);
            let labels: Vec<i64> = match img.color() {
                image::ColorType::L8 | image::ColorType::La8 => img.to_luma8().pixels().map(|p| p.0[0] as i64).collect(),
                image::ColorType::L16 | image::ColorType::La16 => img.to_luma16().pixels().map(|p| p.0[0] as i64).collect(),
                _ => img
                    .to_rgb8()
                    .pixels()
                    .map(|p| ((p.0[0] as i64) << 16) | ((p.0[1] as i64) << 8) | p.0[2] as i64)
                    .collect(),
            };
            let t = Tensor::f_from_slice(&labels).and_then(|t| t.f_reshape([h, w])).ctx("building labels")?;
            FeatureMask::from_labels(&t)
        }
        other => Err(io_err(path, format!("unsupported extension `.{other}`; use .npy, .png, .jpg or .jpeg"))),
    }
}

/// Parameters of [`slic`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SlicParams {
    /// Approximate number of segments (default 100).
    pub n_segments: usize,
    /// Weight of spatial against channel distance, channels scaled to `[0, 100]` (default 10,
    /// scikit-image's default).
    pub compactness: f64,
    /// Assignment/update iterations (default 10).
    pub max_iter: usize,
}

impl Default for SlicParams {
    fn default() -> Self {
        SlicParams { n_segments: 100, compactness: 10.0, max_iter: 10 }
    }
}

impl SlicParams {
    /// Defaults with `n_segments` segments.
    pub fn new(n_segments: usize) -> SlicParams {
        SlicParams { n_segments, ..Default::default() }
    }

    /// Check the ranges.
    pub fn check(self) -> Result<SlicParams> {
        if self.n_segments == 0 {
            return Err(AttribError::param("n_segments", "must be at least 1"));
        }
        if !(self.compactness.is_finite() && self.compactness > 0.0) {
            return Err(AttribError::param("compactness", "must be a positive number"));
        }
        if self.max_iter == 0 {
            return Err(AttribError::param("max_iter", "must be at least 1"));
        }
        Ok(self)
    }
}

/// SLIC superpixels of one image: `[C, H, W]` (channels first) or `[H, W]`. Returns `[H, W]`
/// int64 labels `0..k`, every segment 4-connected.
pub fn slic(image: &Tensor, params: &SlicParams) -> Result<Tensor> {
    let params = params.check()?;
    let size = image.size();
    let (c, h, w) = match size.as_slice() {
        [h, w] => (1, *h, *w),
        [c, h, w] => (*c, *h, *w),
        _ => {
            return Err(AttribError::InputShape(format!(
                "SLIC needs an image of shape [C, H, W] or [H, W], got {size:?}"
            )))
        }
    };
    if h == 0 || w == 0 || c == 0 {
        return Err(AttribError::InputShape(format!("SLIC got an empty image of shape {size:?}")));
    }
    let data = attrib_tensor::convert::tensor_to_vec_f32(image)?;
    if data.iter().any(|v| !v.is_finite()) {
        return Err(AttribError::NonFinite { what: "SLIC image".into(), count: data.iter().filter(|v| !v.is_finite()).count() as i64 });
    }
    let labels = slic_plane(&data, c as usize, h as usize, w as usize, &params);
    Tensor::f_from_slice(&labels).and_then(|t| t.f_reshape([h, w])).ctx("building labels")
}

/// SLIC on every row of a batch `[N, C, H, W]` (or `[N, H, W]`): a per-row mask
/// `[N, 1, H, W]` (or `[N, H, W]`), shared by the channels of each row.
pub fn slic_mask(batch: &Tensor, params: &SlicParams) -> Result<FeatureMask> {
    let size = batch.size();
    if size.len() != 3 && size.len() != 4 {
        return Err(AttribError::InputShape(format!(
            "SLIC masks need image inputs [N, C, H, W] or [N, H, W], got {size:?}"
        )));
    }
    let rows = (0..size[0])
        .map(|i| {
            let img = batch.f_get(i).ctx("taking one image")?;
            slic(&img, params)
        })
        .collect::<Result<Vec<_>>>()?;
    let mut stacked = Tensor::f_stack(&rows, 0).ctx("stacking SLIC labels")?;
    if size.len() == 4 {
        stacked = stacked.f_unsqueeze(1).ctx("stacking SLIC labels")?;
    }
    FeatureMask::new(stacked)
}

struct Center {
    y: f64,
    x: f64,
    col: Vec<f64>,
}

fn slic_plane(data: &[f32], c: usize, h: usize, w: usize, p: &SlicParams) -> Vec<i64> {
    let hw = h * w;
    let (lo, hi) = data.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)));
    let scale = if hi > lo { 100.0 / (hi - lo) as f64 } else { 0.0 };
    let col = |ch: usize, i: usize| (data[ch * hw + i] - lo) as f64 * scale;

    let k = p.n_segments.min(hw).max(1);
    let step = ((hw as f64) / k as f64).sqrt();
    let ny = ((h as f64 / step).round() as usize).clamp(1, h);
    let nx = ((w as f64 / step).round() as usize).clamp(1, w);
    let (sy, sx) = (h as f64 / ny as f64, w as f64 / nx as f64);
    let s = sy.max(sx);
    let mut centers: Vec<Center> = Vec::with_capacity(ny * nx);
    for gy in 0..ny {
        for gx in 0..nx {
            let y = ((gy as f64 + 0.5) * sy).floor().min(h as f64 - 1.0);
            let x = ((gx as f64 + 0.5) * sx).floor().min(w as f64 - 1.0);
            let i = y as usize * w + x as usize;
            centers.push(Center { y, x, col: (0..c).map(|ch| col(ch, i)).collect() });
        }
    }
    // Start from the grid cells, so that every pixel has a label even if no centre reaches it.
    let mut labels: Vec<usize> = (0..hw)
        .map(|i| {
            let (y, x) = (i / w, i % w);
            let gy = ((y as f64 / sy) as usize).min(ny - 1);
            let gx = ((x as f64 / sx) as usize).min(nx - 1);
            gy * nx + gx
        })
        .collect();
    let mut dist = vec![f64::INFINITY; hw];
    let wspace = (p.compactness / s).powi(2);
    let radius = s.ceil() as i64;
    for _ in 0..p.max_iter {
        dist.iter_mut().for_each(|d| *d = f64::INFINITY);
        for (ci, ctr) in centers.iter().enumerate() {
            let (cy, cx) = (ctr.y.round() as i64, ctr.x.round() as i64);
            let y0 = (cy - radius).max(0) as usize;
            let y1 = ((cy + radius).min(h as i64 - 1)) as usize;
            let x0 = (cx - radius).max(0) as usize;
            let x1 = ((cx + radius).min(w as i64 - 1)) as usize;
            for y in y0..=y1 {
                for x in x0..=x1 {
                    let i = y * w + x;
                    let mut dc = 0.0;
                    for ch in 0..c {
                        let d = col(ch, i) - ctr.col[ch];
                        dc += d * d;
                    }
                    let (dy, dx) = (y as f64 - ctr.y, x as f64 - ctr.x);
                    let d = dc + (dy * dy + dx * dx) * wspace;
                    if d < dist[i] {
                        dist[i] = d;
                        labels[i] = ci;
                    }
                }
            }
        }
        let mut sums = vec![(0.0f64, 0.0f64, vec![0.0f64; c], 0usize); centers.len()];
        for i in 0..hw {
            let e = &mut sums[labels[i]];
            e.0 += (i / w) as f64;
            e.1 += (i % w) as f64;
            for ch in 0..c {
                e.2[ch] += col(ch, i);
            }
            e.3 += 1;
        }
        for (ctr, (sy_, sx_, sc, n)) in centers.iter_mut().zip(sums) {
            if n > 0 {
                let nf = n as f64;
                ctr.y = sy_ / nf;
                ctr.x = sx_ / nf;
                ctr.col = sc.into_iter().map(|v| v / nf).collect();
            }
        }
    }
    enforce_connectivity(&labels, h, w, ((s * s) / 4.0).max(1.0) as usize)
}

/// Relabel so that every segment is one 4-connected piece; pieces smaller than `min_size` join
/// an earlier neighbouring segment. Labels are numbered in raster order.
fn enforce_connectivity(labels: &[usize], h: usize, w: usize, min_size: usize) -> Vec<i64> {
    let hw = h * w;
    let mut out = vec![-1i64; hw];
    let mut next = 0i64;
    let mut queue = VecDeque::new();
    let mut piece = Vec::new();
    for startp in 0..hw {
        if out[startp] >= 0 {
            continue;
        }
        let lab = labels[startp];
        piece.clear();
        queue.clear();
        queue.push_back(startp);
        out[startp] = -2;
        let mut adjacent: Option<i64> = None;
        while let Some(i) = queue.pop_front() {
            piece.push(i);
            let (y, x) = (i / w, i % w);
            let mut nb = [usize::MAX; 4];
            if x > 0 {
                nb[0] = i - 1;
            }
            if y > 0 {
                nb[1] = i - w;
            }
            if x + 1 < w {
                nb[2] = i + 1;
            }
            if y + 1 < h {
                nb[3] = i + w;
            }
            for &j in nb.iter().filter(|&&j| j != usize::MAX) {
                if out[j] >= 0 {
                    if adjacent.is_none() {
                        adjacent = Some(out[j]);
                    }
                } else if out[j] == -1 && labels[j] == lab {
                    out[j] = -2;
                    queue.push_back(j);
                }
            }
        }
        let id = match adjacent {
            Some(a) if piece.len() < min_size => a,
            _ => {
                next += 1;
                next - 1
            }
        };
        for &i in &piece {
            out[i] = id;
        }
    }
    // Merging can leave gaps in the numbering only if no id was skipped; ids are already dense
    // because a new id is taken only for kept pieces.
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quadrants(h: i64, w: i64) -> Tensor {
        // Two channels, four flat quadrants plus a mild ramp.
        let y = Tensor::arange(h, (Kind::Float, Device::Cpu)).unsqueeze(1).expand([h, w], false);
        let x = Tensor::arange(w, (Kind::Float, Device::Cpu)).unsqueeze(0).expand([h, w], false);
        let a = y.ge(h / 2).to_kind(Kind::Float) * 1.0 + &x * 0.001;
        let b = x.ge(w / 2).to_kind(Kind::Float) * 1.0 + &y * 0.001;
        Tensor::stack(&[a, b], 0)
    }

    fn connected(labels: &[i64], h: usize, w: usize) -> bool {
        let k = labels.iter().max().map_or(0, |m| m + 1) as usize;
        let mut seen_piece = vec![false; k];
        let mut visited = vec![false; h * w];
        for s in 0..h * w {
            if visited[s] {
                continue;
            }
            let l = labels[s];
            if seen_piece[l as usize] {
                return false; // second piece with the same label
            }
            seen_piece[l as usize] = true;
            let mut q = vec![s];
            visited[s] = true;
            while let Some(i) = q.pop() {
                let (y, x) = (i / w, i % w);
                let cand = [(x > 0).then(|| i - 1), (y > 0).then(|| i - w), (x + 1 < w).then(|| i + 1), (y + 1 < h).then(|| i + w)];
                for j in cand.into_iter().flatten() {
                    if !visited[j] && labels[j] == l {
                        visited[j] = true;
                        q.push(j);
                    }
                }
            }
        }
        true
    }

    #[test]
    fn slic_properties() {
        let img = quadrants(40, 48);
        for k in [4usize, 16, 50] {
            let lab = slic(&img, &SlicParams::new(k)).unwrap();
            assert_eq!(lab.size(), vec![40, 48]);
            let v = Vec::<i64>::try_from(lab.reshape([-1])).unwrap();
            let n = v.iter().max().unwrap() + 1;
            assert!(v.iter().all(|&l| (0..n).contains(&l)), "every pixel labelled");
            let distinct: std::collections::BTreeSet<_> = v.iter().collect();
            assert_eq!(distinct.len() as i64, n, "labels dense");
            assert!((n as f64) >= k as f64 * 0.5 && (n as f64) <= k as f64 * 2.0, "k={k}: {n} segments");
            assert!(connected(&v, 40, 48), "k={k}: segments are 4-connected");
            // Deterministic.
            assert!(slic(&img, &SlicParams::new(k)).unwrap().equal(&lab));
        }
    }

    #[test]
    fn slic_follows_strong_edges() {
        let img = quadrants(32, 32);
        let lab = slic(&img, &SlicParams::new(16)).unwrap();
        let v = Vec::<i64>::try_from(lab.reshape([-1])).unwrap();
        // No segment straddles a quadrant boundary.
        let mut quad_of = std::collections::HashMap::new();
        for (i, &l) in v.iter().enumerate() {
            let q = ((i / 32) >= 16) as u8 * 2 + ((i % 32) >= 16) as u8;
            assert_eq!(*quad_of.entry(l).or_insert(q), q, "segment {l} crosses a quadrant edge");
        }
    }

    #[test]
    fn slic_rejects_bad_input() {
        assert!(slic(&Tensor::zeros([2, 3, 4, 5], (Kind::Float, Device::Cpu)), &SlicParams::default()).is_err());
        assert!(SlicParams::new(0).check().is_err());
        assert!(slic_mask(&Tensor::zeros([4, 5], (Kind::Float, Device::Cpu)), &SlicParams::default()).is_err());
        // A constant image still gets a full labelling.
        let lab = slic(&Tensor::zeros([8, 8], (Kind::Float, Device::Cpu)), &SlicParams::new(4)).unwrap();
        assert_eq!(lab.size(), vec![8, 8]);
    }

    #[test]
    fn slic_mask_is_per_row() {
        let img = Tensor::stack(&[quadrants(16, 16), quadrants(16, 16).flip([1])], 0);
        let m = slic_mask(&img, &SlicParams::new(8)).unwrap();
        assert_eq!(m.ids().size(), vec![2, 1, 16, 16]);
    }

    #[test]
    fn label_images_png_and_npy() {
        let dir = attrib_scratch::scratch_dir().join("labels");
        std::fs::create_dir_all(&dir).unwrap();
        // Grayscale PNG with 3 levels.
        let gray = image::GrayImage::from_fn(6, 4, |x, _| image::Luma([if x < 2 { 10 } else if x < 4 { 200 } else { 50 }]));
        let p = dir.join("l.png");
        gray.save(&p).unwrap();
        let m = read_label_image(&p).unwrap();
        assert_eq!(m.ids().size(), vec![4, 6]);
        assert_eq!(m.groups().unwrap(), vec![0, 1, 2]);
        let row = Vec::<i64>::try_from(m.ids().get(0)).unwrap();
        assert_eq!(row, vec![0, 0, 2, 2, 1, 1], "relabelled in order of grey level (10 < 50 < 200)");
        // RGB PNG with 2 colours.
        let rgb = image::RgbImage::from_fn(3, 2, |_, y| image::Rgb(if y == 0 { [255, 0, 0] } else { [0, 0, 255] }));
        let p = dir.join("c.png");
        rgb.save(&p).unwrap();
        assert_eq!(read_label_image(&p).unwrap().groups().unwrap(), vec![0, 1]);
        // Unreadable PNG and unsupported extension.
        let bad = dir.join("bad.png");
        std::fs::write(&bad, b"not a png").unwrap();
        let e = read_label_image(&bad).unwrap_err().to_string();
        assert!(e.contains("bad.png"), "{e}");
        assert!(read_label_image(dir.join("missing.png")).is_err());
        let txt = dir.join("x.txt");
        std::fs::write(&txt, b"1").unwrap();
        assert!(read_label_image(&txt).is_err());
        std::fs::remove_dir_all(&dir).ok();
    }
}
