//! Unit tests of the engine: the element-list paths of [`Positions::build`] against a dense
//! selection.

use super::*;
use attrib_core::FeatureMask;
use attrib_tensor::{ChunkRows, Layout};
use tch::{Device, Kind, Tensor};

/// The reference: a dense boolean selection and `where` for the perturbed rows (below
/// `total`), the samples themselves after them. `src`: the source row of every perturbed row.
#[allow(clippy::too_many_arguments)]
fn reference(groups: &Groups, x: &Tensor, values: &Tensor, start: i64, end: i64, n: i64, total: i64, src: &Tensor) -> Tensor {
    let pe = end.min(total).max(start);
    let mut parts = Vec::new();
    if pe > start {
        let r = Tensor::arange_start(start, pe, (Kind::Int64, Device::Cpu));
        let (sample, block) = (r.remainder(n), r.floor_divide_scalar(n));
        let sel = groups.selection(0, &sample, &block).unwrap();
        parts.push(rows_of(values, &src.narrow(0, start, pe - start)).unwrap().where_self(&sel, &rows_of(x, &sample).unwrap()));
    }
    if end > pe {
        parts.push(rows_of(x, &Tensor::arange_start(pe, end, (Kind::Int64, Device::Cpu)).remainder(n)).unwrap());
    }
    Tensor::cat(&parts, 0)
}

#[test]
fn element_lists_build_the_same_rows_as_a_dense_selection() {
    let n = 3i64;
    let mut padded_seen = false;
    for per_row in [false, true] {
        for seed in 0..4 {
            tch::manual_seed(seed);
            // Image-like rows [2, 5, 3], so that the channels-last layout applies.
            let x = Tensor::randn([n, 2, 5, 3], (Kind::Double, Device::Cpu));
            let base = Tensor::randn([n, 2, 5, 3], (Kind::Double, Device::Cpu));
            // Seeds 0-1: balanced groups (padded lists); 2-3: uneven ones, some possibly empty.
            let ids = if seed < 2 {
                Tensor::arange(30, (Kind::Int64, Device::Cpu)).remainder(4).reshape([1, 2, 5, 3])
            } else {
                Tensor::randint(5, [if per_row { n } else { 1 }, 2, 5, 3], (Kind::Int64, Device::Cpu)).pow_tensor_scalar(2)
            };
            let ids = if per_row && seed < 2 { ids.repeat([n, 1, 1, 1]) } else { ids };
            let groups = Groups::resolve(Some(&[FeatureMask::new(ids).unwrap()]), &[x.shallow_clone()], 1, Device::Cpu).unwrap();
            let g = groups.groups.len() as i64;
            let block_of = groups.block_of_elements(0).unwrap();
            // The host path (the CPU default), and the index-tensor path (other devices)
            // with padded and with ragged element lists.
            let host = Positions::from_blocks(&block_of, g).unwrap();
            assert!(host.host_path);
            let mut padded = Positions::from_blocks(&block_of, g).unwrap();
            padded.host_path = false;
            padded_seen |= padded.index().unwrap().padded.is_some();
            let mut ragged = Positions::from_blocks(&block_of, g).unwrap();
            ragged.host_path = false;
            ragged.allow_padding = false;
            let total = g * n;
            let own = Tensor::arange(total, (Kind::Int64, Device::Cpu)).remainder(n);
            let perm = Tensor::randperm(total, (Kind::Int64, Device::Cpu)).remainder(n);
            let perm_host = Vec::<i64>::try_from(&perm).unwrap();
            let permuted = Source::Rows { host: &perm_host, tensor: &perm };
            // Aligned chunks in a row (the buffer is restored, not rebuilt), an aligned one
            // longer than any before (its new rows gathered into the buffer's spare room),
            // misaligned ones, a short last chunk, chunks reaching into and made only of the
            // unperturbed rows after the perturbed ones, and the whole batch.
            let mut chunks = vec![
                (0, 2 * n),
                (2 * n, 4 * n),
                (0, 8),
                (3, 12),
                (1, 5),
                (total - 4, total - 1),
                (2, 3),
                (total - n, total + n),
                (total, total + n),
                (0, total + n),
            ];
            chunks.retain(|&(s, e)| s >= 0 && e <= total + n);
            for layout in [Layout::Contiguous, Layout::ChannelsLast] {
                for plan in [&host, &padded, &ragged] {
                    for (step, &(s, e)) in chunks.iter().enumerate() {
                        let capacity = attrib_tensor::longest_chunk((e - s) as usize, None) as i64;
                        let chunk = PerturbedChunk { rows: ChunkRows::new(s, e, n, Device::Cpu), perturbed: total, capacity };
                        // Values from the baselines (ablation) and from other rows (permutation).
                        let a = plan.build(&x, &base, &chunk, Source::Own, layout).unwrap();
                        assert_eq!(layout == Layout::ChannelsLast, a.stride()[1] == 1, "layout of rows {s}..{e}");
                        assert!(a.equal(&reference(&groups, &x, &base, s, e, n, total, &own)), "baseline rows {s}..{e} {layout:?}");
                        if step == 0 {
                            // A model that writes into its input: the next chunk must not
                            // inherit the damage.
                            let mut a = a;
                            let _ = a.fill_(7.0);
                        }
                        let b = plan.build(&x, &x, &chunk, permuted, layout).unwrap();
                        assert!(b.equal(&reference(&groups, &x, &x, s, e, n, total, &perm)), "permuted rows {s}..{e} {layout:?}");
                    }
                }
            }
        }
    }
    assert!(padded_seen);
}
