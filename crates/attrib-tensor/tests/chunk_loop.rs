//! The evaluator's chunk loop with fake models (closures that record or refuse what they are
//! given): exact chunk sizes with and without `max_batch` (the tail rule), out-of-memory
//! back-off, a layout the model rejects, and outputs that are views of the model's input.

use attrib_core::{AttribError, BatchOptions, FnModel, Inputs, MemoryFormat, Target};
use attrib_tensor::{chunk_end, longest_chunk, Evaluator, Expanded, Layout};
use std::cell::RefCell;
use tch::{Device, Kind, Tensor};

/// `[n, d]` float64 inputs with distinct values.
fn input(n: i64, d: i64) -> Tensor {
    (Tensor::arange(n * d, (Kind::Double, Device::Cpu)) * 0.37).sin().reshape([n, d])
}

/// The scalar-output model `x ↦ Σ_j (j + 1) x_j` that records the rows of every call.
fn recording(sizes: &RefCell<Vec<i64>>) -> FnModel<'_> {
    FnModel::new(move |x: &Tensor| {
        sizes.borrow_mut().push(x.size()[0]);
        let d = x.size()[1];
        let w = Tensor::arange_start(1, d + 1, (Kind::Double, Device::Cpu));
        x.matmul(&w)
    })
}

fn closed_form(x: &Tensor, blocks: i64) -> Tensor {
    let d = x.size()[1];
    let w = Tensor::arange_start(1, d + 1, (Kind::Double, Device::Cpu));
    x.matmul(&w).repeat([blocks])
}

fn forward_sizes(options: BatchOptions, n: i64, blocks: i64) -> (Vec<i64>, Tensor, Tensor) {
    let sizes = RefCell::new(Vec::new());
    let model = recording(&sizes);
    let ev = Evaluator::new(&model, options).unwrap();
    let x = input(n, 4);
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    sizes.borrow_mut().clear();
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, blocks)).unwrap();
    let got = sizes.borrow().clone();
    (got, out, closed_form(&x, blocks))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The tail rule on its own: a remainder of at most an eighth joins the chunk before it, never
/// beyond the cap.
#[test]
fn tail_rule_respects_the_cap() {
    // 288 rows in chunks of 256: the 32-row tail joins without a cap, not with max_batch 256.
    assert_eq!(chunk_end(0, 256, 288, true, None), 288);
    assert_eq!(chunk_end(0, 256, 288, true, Some(256)), 256);
    assert_eq!(chunk_end(256, 256, 288, true, Some(256)), 288);
    // A tail longer than an eighth never joins; nor does one when joining is off.
    assert_eq!(chunk_end(0, 256, 289, true, None), 256);
    assert_eq!(chunk_end(0, 256, 288, false, None), 256);
    // Within the cap (chunks halved below it), the tail joins.
    assert_eq!(chunk_end(32, 32, 68, true, Some(64)), 68);
    assert_eq!(longest_chunk(256, None), 288);
    assert_eq!(longest_chunk(256, Some(256)), 256);
    assert_eq!(longest_chunk(32, Some(64)), 36);
    assert_eq!(longest_chunk(32, Some(16)), 32);
}

/// `max_batch` is a hard cap on the rows of a model call: 288 rows with `max_batch` 256 run as
/// 256 + 32 (not one call of 288); 310 rows with 100 as 100, 100, 100, 10.
#[test]
fn max_batch_is_a_hard_cap() {
    for (max_batch, n, blocks, want) in [
        (256usize, 16i64, 18i64, vec![256i64, 32]),
        (100, 31, 10, vec![100, 100, 100, 10]),
        (7, 3, 5, vec![7, 7, 1]),
    ] {
        let (sizes, out, want_out) = forward_sizes(BatchOptions::with_max_batch(max_batch), n, blocks);
        assert_eq!(sizes, want, "max_batch {max_batch}, {} rows", n * blocks);
        assert!(sizes.iter().all(|&s| s as usize <= max_batch));
        assert!(max_diff(&out, &want_out) < 1e-12);
    }
}

/// Without `max_batch` a short tail joins the last chunk (the automatic size of a small CPU job
/// is 256 rows): 288 rows run as one call, 289 rows as 256 + 33.
#[test]
fn automatic_sizing_joins_a_short_tail() {
    let (sizes, out, want) = forward_sizes(BatchOptions::default(), 16, 18);
    assert_eq!(sizes, vec![288]);
    assert!(max_diff(&out, &want) < 1e-12);
    let (sizes, out, want) = forward_sizes(BatchOptions::default(), 17, 17);
    assert_eq!(sizes, vec![256, 33]);
    assert!(max_diff(&out, &want) < 1e-12);
}

/// A model that runs out of memory above `limit` rows (the message libtorch gives): chunks
/// halve until they fit, the failed chunk runs again, and the result is that of one batch.
#[test]
fn out_of_memory_halves_the_chunk() {
    let calls = RefCell::new(Vec::new());
    let limit = 40i64;
    let model = FnModel::new(|x: &Tensor| {
        let rows = x.size()[0];
        calls.borrow_mut().push(rows);
        if rows > limit {
            panic!("CUDA out of memory. Tried to allocate 2.00 GiB (fake, {rows} rows)");
        }
        let d = x.size()[1];
        x.matmul(&Tensor::arange_start(1, d + 1, (Kind::Double, Device::Cpu)))
    });
    // max_batch 64, 68 rows: 64 fails, then chunks of 32; the 4-row tail joins the second chunk
    // (36 rows, within the cap of 64).
    let ev = Evaluator::new(&model, BatchOptions::with_max_batch(64)).unwrap();
    let x = input(4, 3);
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    calls.borrow_mut().clear();
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 17)).unwrap();
    assert_eq!(*calls.borrow(), vec![64, 32, 36]);
    assert_eq!(ev.forward_chunk_rows(), Some(32));
    assert!(max_diff(&out, &closed_form(&x, 17)) < 1e-12);

    // Gradients back off the same way (and learn their own size).
    calls.borrow_mut().clear();
    let g = ev.gradients(&p, &Expanded::repeat(&p.inputs, 30)).unwrap();
    assert!(calls.borrow().iter().skip(1).all(|&r| r <= limit), "{:?}", calls.borrow());
    let w = Tensor::arange_start(1, 4, (Kind::Double, Device::Cpu));
    assert!(max_diff(&g.grads[0], &w.unsqueeze(0).expand([120, 3], false)) < 1e-12);
    assert!(max_diff(&g.outputs, &closed_form(&x, 30)) < 1e-12);
}

/// When even one row does not fit, the error says so (out of memory, one row), not a panic.
#[test]
fn out_of_memory_at_one_row_is_an_error() {
    let model = FnModel::new(|x: &Tensor| -> Tensor {
        if x.size()[0] > 0 {
            panic!("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1099511627776 bytes");
        }
        x.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    });
    let ev = Evaluator::new(&model, BatchOptions::with_max_batch(8)).unwrap();
    let x = input(3, 2);
    let p = Evaluator::new(&FnModel::new(|x: &Tensor| x.sum_dim_intlist([1i64].as_slice(), false, Kind::Double)), BatchOptions::default())
        .unwrap()
        .prepare(&Inputs::new(x), &Target::None)
        .unwrap();
    let err = ev.forward(&p, &Expanded::repeat(&p.inputs, 4)).unwrap_err();
    assert!(matches!(err, AttribError::OutOfMemory { rows: 1, .. }), "{err}");
}

/// A model that rejects channels-last inputs (as one that calls `view` on its input does): under
/// `MemoryFormat::Auto` the chunk runs again on contiguous inputs, the layout is dropped and the
/// result is right; forced channels-last is the caller's choice and its error is returned.
#[test]
fn a_rejected_layout_falls_back_to_contiguous() {
    let seen = RefCell::new(Vec::new());
    let model = FnModel::new(|x: &Tensor| {
        seen.borrow_mut().push(x.is_contiguous());
        if !x.is_contiguous() {
            panic!("view size is not compatible with input tensor's size and stride");
        }
        x.view([x.size()[0], -1]).sum_dim_intlist([1i64].as_slice(), false, Kind::Double)
    });
    let x = (Tensor::arange(2 * 3 * 4 * 4, (Kind::Double, Device::Cpu)) * 0.1).cos().reshape([2, 3, 4, 4]);
    let want = x.sum_dim_intlist([1i64, 2, 3].as_slice(), false, Kind::Double).repeat([40]);
    let ev = Evaluator::new(&model, BatchOptions::with_max_batch(8)).unwrap();
    let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
    seen.borrow_mut().clear();
    let out = ev.forward(&p, &Expanded::repeat(&p.inputs, 40)).unwrap();
    assert!(max_diff(&out, &want) < 1e-12);
    assert_eq!(ev.forward_layout(), Some(Layout::Contiguous));
    assert!(seen.borrow().contains(&false), "channels-last was tried");
    // After the fallback every chunk is contiguous.
    let first_plain = seen.borrow().iter().position(|&c| !c).unwrap() + 1;
    assert!(seen.borrow()[first_plain..].iter().all(|&c| c));

    let forced = Evaluator::new(&model, BatchOptions { memory_format: MemoryFormat::ChannelsLast, ..BatchOptions::with_max_batch(8) }).unwrap();
    let err = forced.forward(&p, &Expanded::repeat(&p.inputs, 4)).unwrap_err();
    assert!(matches!(err, AttribError::ModelForward { .. }), "{err}");
}

/// A builder that reuses one buffer for every chunk, and a model whose output is a view of its
/// input: what the evaluator hands on must not change when the next chunk is built.
#[test]
fn outputs_that_view_the_input_survive_a_reused_buffer() {
    let x = input(5, 3);
    let buffer = RefCell::new(Tensor::zeros([4, 3], (Kind::Double, Device::Cpu)));
    let batch = Expanded::new(5, 20, |s, e| {
        let rows = e - s;
        let buf = buffer.borrow();
        let idx = Tensor::arange_start(s, e, (Kind::Int64, Device::Cpu)).remainder(5);
        let mut dst = buf.narrow(0, 0, rows);
        dst.copy_(&(x.index_select(0, &idx) * (s as f64 + 1.0)));
        Ok(vec![dst])
    });
    for view in [0, 1] {
        let model = FnModel::new(move |x: &Tensor| if view == 0 { x.select(1, 0) } else { x.narrow(1, 0, 1).view([-1]) });
        let ev = Evaluator::new(&model, BatchOptions::with_max_batch(4)).unwrap();
        let p = ev.prepare(&Inputs::new(x.shallow_clone()), &Target::None).unwrap();
        let out = ev.forward(&p, &batch).unwrap();
        let want = Tensor::cat(
            &(0..5)
                .map(|c| {
                    let idx = Tensor::arange_start(4 * c, 4 * c + 4, (Kind::Int64, Device::Cpu)).remainder(5);
                    x.index_select(0, &idx).select(1, 0) * (4.0 * c as f64 + 1.0)
                })
                .collect::<Vec<_>>(),
            0,
        );
        assert!(max_diff(&out, &want) < 1e-12, "view {view}: {out:?}");
    }
}
