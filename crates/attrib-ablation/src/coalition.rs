//! Coalition evaluation: the model's target output on inputs where a chosen set of feature
//! groups (a coalition) keeps the input's values and every other group takes the baseline's.
//! The Shapley-value methods ([`crate::shapley`]) are sums of such outputs with weights.
//!
//! Coalitions are rows of a boolean matrix `z` (`[m, G]`, one column per group in the order of
//! [`Groups::groups`]), shared by all `n` rows of the batch. Coalition `j` of row `i` is logical
//! row `j·n + i` of one expanded batch ([`attrib_tensor::ChunkRows`]'s layout: block = coalition),
//! which the evaluator cuts into chunks from the memory budget or `max_batch`. A chunk is built
//! densely: the coalition rows it needs are gathered from `z`, each element is mapped to its
//! group's column ([`Groups::block_of_elements`]; per-row masks pick the row's own mapping, a
//! group id used in several inputs is one column for all of them), and `where` picks the input
//! or the baseline.

use crate::engine::{rows_of, Groups};
use attrib_core::{AttribError, Baselines, Result, TorchResultExt};
use attrib_tensor::{ChunkRows, Evaluator, Expanded, Prepared};
use tch::{Kind, Tensor};

/// Target outputs of the model on coalitions of feature groups: `z` is `[m, G]` (Bool,
/// `G = groups.groups.len()`, columns in the order of `groups.groups`), shared by all `n` rows;
/// element `e` of row `i` of coalition `j` is `x[i, e]` where `z[j, group(e)]` is true and
/// `base[i, e]` otherwise. Returns `[m, n]` (`Kind::Double`) `F_t` values, computed through the
/// evaluator in chunks (every coalition of every row as rows of one [`Expanded`] batch; the
/// memory budget / `max_batch` decides the chunk size).
///
/// `base` holds one tensor per input, each with the input's shape (`[n, ...]`; an expanded view
/// such as one baseline sample broadcast to the batch is fine).
pub(crate) fn coalition_outputs(eval: &Evaluator, p: &Prepared, groups: &Groups, base: &[Tensor], z: &Tensor) -> Result<Tensor> {
    let g = groups.groups.len() as i64;
    let n = p.n;
    let zs = z.size();
    if zs.len() != 2 || zs[1] != g || z.kind() != Kind::Bool {
        return Err(AttribError::Internal(format!(
            "coalitions must be a [m, {g}] boolean matrix (one column per feature group); got {:?} {:?}",
            zs,
            z.kind()
        )));
    }
    if base.len() != p.inputs.len() {
        return Err(AttribError::Internal(format!("{} baselines for {} inputs", base.len(), p.inputs.len())));
    }
    for (k, (x, b)) in p.inputs.iter().zip(base).enumerate() {
        if x.size() != b.size() {
            return Err(AttribError::Internal(format!("baseline of input {k} has shape {:?}, the input {:?}", b.size(), x.size())));
        }
    }
    let m = zs[0];
    if m == 0 || n == 0 {
        return Tensor::f_zeros([m, n], (Kind::Double, p.device)).ctx("coalition outputs");
    }
    let z = z.f_to_device(p.device).ctx("moving coalitions")?;
    let block_of = (0..p.inputs.len()).map(|k| groups.block_of_elements(k)).collect::<Result<Vec<_>>>()?;
    let batch = Expanded::new(n, m * n, |start, end| {
        let rows = ChunkRows::new(start, end, n, p.device);
        let sample = rows.samples()?;
        let members = z.f_index_select(0, &rows.blocks()?).ctx("coalitions of a chunk")?;
        p.inputs
            .iter()
            .zip(base)
            .zip(&block_of)
            .map(|((x, b), blocks)| {
                let ctx = "building coalition rows";
                let keep = if blocks.size()[0] == 1 {
                    blocks.f_select(0, 0).and_then(|bl| members.f_index_select(1, &bl))
                } else {
                    blocks.f_index_select(0, &sample).and_then(|bl| members.f_gather(1, &bl, false))
                }
                .ctx(ctx)?;
                let mut shape = x.size();
                shape[0] = rows.len();
                let keep = keep.f_reshape(&shape).ctx(ctx)?;
                rows_of(x, &sample)?.f_where_self(&keep, &rows_of(b, &sample)?).ctx(ctx)
            })
            .collect()
    })
    .rows_like(&p.inputs);
    eval.forward(p, &batch)?.f_to_kind(Kind::Double).and_then(|o| o.f_reshape([m, n])).ctx("coalition outputs")
}

/// Per-element attributions from per-group values: `values` is `[G, n]` (one value per group, in
/// the order of [`Groups::groups`], and row); every element of input `k` gets the value of its
/// group in its row ([`Groups::scatter`]), in the input's dtype. One tensor per input.
pub(crate) fn group_values_to_elements(p: &Prepared, groups: &Groups, values: &Tensor) -> Result<Vec<Tensor>> {
    let g = groups.groups.len() as i64;
    if values.size() != [g, p.n] {
        return Err(AttribError::Internal(format!("group values have shape {:?}; expected [{g}, {}]", values.size(), p.n)));
    }
    p.inputs
        .iter()
        .enumerate()
        .map(|(k, x)| groups.scatter(k, &groups.block_of_elements(k)?, values, x.kind()))
        .collect()
}

/// The baselines of every input as one or more `[n, ...]` sets: the per-row baselines, or each
/// sample of a background distribution broadcast to the batch.
pub(crate) fn baseline_sets(baselines: &Baselines, p: &Prepared, copies: i64) -> Result<Vec<Vec<Tensor>>> {
    if !baselines.is_distribution() {
        return Ok(vec![baselines.resolve_copies(&p.inputs, copies)?]);
    }
    let samples = baselines.samples(&p.inputs)?;
    let s = samples.first().map_or(0, |t| t.size()[0]);
    (0..s)
        .map(|j| {
            samples
                .iter()
                .zip(&p.inputs)
                .map(|(b, x)| b.f_narrow(0, j, 1).and_then(|r| r.f_expand(x.size(), false)).ctx("baseline sample"))
                .collect()
        })
        .collect()
}

/// The mean over the baseline sets of the coalition values `v` (`[m, n]`).
pub(crate) fn mean_coalition_outputs(
    eval: &Evaluator,
    p: &Prepared,
    groups: &Groups,
    sets: &[Vec<Tensor>],
    z: &Tensor,
) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for base in sets {
        let v = coalition_outputs(eval, p, groups, base, z)?;
        total = Some(match total {
            None => v,
            Some(t) => t.f_add(&v).ctx("averaging over baselines")?,
        });
    }
    let total = total.ok_or_else(|| AttribError::Internal("no baseline sample".into()))?;
    total.f_div_scalar(sets.len() as f64).ctx("averaging over baselines")
}

/// Every coalition of `g` groups, `[2^g, g]` Bool: row `s` holds the bits of `s` (column `j` is
/// bit `j`), so row 0 is the empty coalition and the last row the full one.
pub(crate) fn all_coalitions(g: i64, device: tch::Device) -> Result<Tensor> {
    coalitions_range(g, 0, 1i64 << g, device)
}

/// Rows `start..start + len` of [`all_coalitions`].
pub(crate) fn coalitions_range(g: i64, start: i64, len: i64, device: tch::Device) -> Result<Tensor> {
    let ctx = "enumerating coalitions";
    let s = Tensor::f_arange_start(start, start + len, (Kind::Int64, device)).ctx(ctx)?;
    let bits = Tensor::f_arange(g, (Kind::Int64, device)).ctx(ctx)?;
    s.f_unsqueeze(1)
        .and_then(|s| s.f_bitwise_right_shift(&bits.f_unsqueeze(0)?))
        .and_then(|t| t.f_bitwise_and(1))
        .and_then(|t| t.f_to_kind(Kind::Bool))
        .ctx(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use attrib_core::{BatchOptions, FeatureMask, FnModel, Inputs, Target};
    use tch::Device;

    /// The rows of coalition `j` of every sample, built element by element on the host.
    fn naive_rows(x: &Tensor, base: &Tensor, ids: &Tensor, groups: &[i64], z: &[Vec<bool>], j: usize) -> Tensor {
        let n = x.size()[0];
        let xf = Vec::<f64>::try_from(x.reshape([-1])).unwrap();
        let bf = Vec::<f64>::try_from(base.reshape([-1])).unwrap();
        let idf = Vec::<i64>::try_from(ids.reshape([-1])).unwrap();
        let m = xf.len() / n as usize;
        let per_row = idf.len() != m;
        let mut out = Vec::with_capacity(xf.len());
        for i in 0..n as usize {
            for e in 0..m {
                let id = if per_row { idf[i * m + e] } else { idf[e] };
                let col = groups.iter().position(|&g| g == id).unwrap();
                out.push(if z[j][col] { xf[i * m + e] } else { bf[i * m + e] });
            }
        }
        Tensor::from_slice(&out).reshape(x.size())
    }

    #[test]
    fn coalition_rows_equal_a_naive_reference() {
        for per_row in [false, true] {
            for max_batch in [None, Some(1), Some(5)] {
                tch::manual_seed(3);
                let n = 3i64;
                let x = Tensor::randn([n, 2, 3, 2], (Kind::Double, Device::Cpu));
                let base = Tensor::randn([n, 2, 3, 2], (Kind::Double, Device::Cpu));
                let ids = Tensor::randint(4, [if per_row { n } else { 1 }, 2, 3, 2], (Kind::Int64, Device::Cpu)).f_mul_scalar(3).unwrap();
                // A model that returns a fixed random projection of its row: the outputs identify
                // the rows (a linear map is injective on these few rows with probability 1).
                let w = Tensor::randn([12], (Kind::Double, Device::Cpu));
                let w2 = w.shallow_clone();
                let model = FnModel::new(move |t: &Tensor| t.reshape([-1, 12]).matmul(&w2));
                let eval = Evaluator::new(&model, BatchOptions { max_batch, ..BatchOptions::default() }).unwrap();
                let p = eval.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
                let mask = FeatureMask::new(ids.shallow_clone()).unwrap();
                let groups = Groups::resolve(Some(&[mask]), &p.inputs, 1, Device::Cpu).unwrap();
                let g = groups.groups.len();
                let zs: Vec<Vec<bool>> = (0..7).map(|j| (0..g).map(|c| (j * 5 + c * 3) % 4 < 2).collect()).collect();
                let flat: Vec<bool> = zs.iter().flatten().copied().collect();
                let z = Tensor::from_slice(&flat).reshape([7, g as i64]);
                let out = coalition_outputs(&eval, &p, &groups, &[base.shallow_clone()], &z).unwrap();
                assert_eq!(out.size(), vec![7, n]);
                assert_eq!(out.kind(), Kind::Double);
                for j in 0..7 {
                    let rows = naive_rows(&x, &base, &ids, &groups.groups, &zs, j);
                    let expect = rows.reshape([-1, 12]).matmul(&w);
                    let diff = (out.get(j as i64) - expect).abs().max().double_value(&[]);
                    assert!(diff < 1e-12, "coalition {j}, per_row {per_row}, max_batch {max_batch:?}: {diff}");
                }
            }
        }
    }

    #[test]
    fn coalitions_span_inputs_that_share_a_group_id() {
        // Two inputs whose masks share group 1: switching it on takes both inputs' elements.
        let a = Tensor::from_slice(&[1.0f64, 2.0]).reshape([1, 2]);
        let b = Tensor::from_slice(&[10.0f64, 20.0, 30.0]).reshape([1, 3]);
        let model = FnModel::multi(|xs: &[Tensor]| xs[0].sum_dim_intlist(1, false, Kind::Double) + xs[1].sum_dim_intlist(1, false, Kind::Double));
        let eval = Evaluator::new(&model, BatchOptions::default()).unwrap();
        let p = eval.prepare(&Inputs::multi(vec![a, b]), &Target::None).unwrap();
        let masks = [
            FeatureMask::new(Tensor::from_slice(&[0i64, 1])).unwrap(),
            FeatureMask::new(Tensor::from_slice(&[1i64, 2, 2])).unwrap(),
        ];
        let groups = Groups::resolve(Some(&masks), &p.inputs, 1, Device::Cpu).unwrap();
        let base = vec![p.inputs[0].zeros_like(), p.inputs[1].zeros_like()];
        let z = all_coalitions(3, Device::Cpu).unwrap();
        let out = coalition_outputs(&eval, &p, &groups, &base, &z).unwrap();
        // Group 0: 1; group 1: 2 + 10; group 2: 20 + 30.
        let expect: Vec<f64> = (0..8).map(|s| [1.0, 12.0, 50.0].iter().enumerate().filter(|(j, _)| s >> j & 1 == 1).map(|(_, v)| v).sum()).collect();
        assert_eq!(Vec::<f64>::try_from(out.reshape([-1])).unwrap(), expect);
        // And back: group values spread onto the elements.
        let values = Tensor::from_slice(&[1.0f64, 2.0, 3.0]).reshape([3, 1]);
        let el = group_values_to_elements(&p, &groups, &values).unwrap();
        assert_eq!(Vec::<f64>::try_from(el[0].reshape([-1])).unwrap(), vec![1.0, 2.0]);
        assert_eq!(Vec::<f64>::try_from(el[1].reshape([-1])).unwrap(), vec![2.0, 3.0, 3.0]);
        assert!(coalition_outputs(&eval, &p, &groups, &base, &Tensor::ones([2, 2], (Kind::Bool, Device::Cpu))).is_err());
    }
}
