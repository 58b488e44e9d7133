//! `Attribution::planned_rows`, which a benchmark warm-up uses to run a job of the method's size
//! before timing (`attrib::tensor::warm::rehearse_job`), states the rows the method's main
//! evaluation really asks of the model: counted here by a model that records every call.

use attrib::methods::Registry;
use attrib::prelude::*;
use attrib::PlannedRows;
use serde_json::{json, Value};
use std::cell::Cell;
use tch::{Device, Kind, Tensor};

/// Model rows a method asked for with gradients and without, and the rows it planned.
fn counted(spec: Value, x: &Tensor) -> (i64, i64, PlannedRows) {
    let (grad_rows, plain_rows) = (Cell::new(0i64), Cell::new(0i64));
    let w = Tensor::ones([3 * 8 * 8, 4], (Kind::Float, Device::Cpu)) / 100.0;
    let model = FnModel::new(|x: &Tensor| {
        let rows = x.size()[0];
        let counter = if x.requires_grad() { &grad_rows } else { &plain_rows };
        counter.set(counter.get() + rows);
        x.flatten(1, -1).matmul(&w).tanh()
    });
    // One memory layout: no timing trial, whose rows computed again in the winner would count.
    let mut spec = spec;
    spec["memory_format"] = json!("contiguous");
    let method = Registry::builtin().build(&serde_json::from_value(spec).unwrap(), &[x.shallow_clone()]).unwrap();
    let inputs = Inputs::new(x.shallow_clone());
    let plan = method.planned_rows(&inputs).expect("the method states its rows");
    method.attribute(&model, &inputs, &Target::Class(1)).unwrap();
    (grad_rows.get(), plain_rows.get(), plan)
}

#[test]
fn planned_rows_are_the_rows_the_main_evaluation_runs() {
    let x = Tensor::rand([5, 3, 8, 8], (Kind::Float, Device::Cpu));
    let (grad, plain, plan) = counted(json!({"method": "saliency"}), &x);
    assert_eq!((plan.rows, plan.gradients, grad, plan.forward_rows, plain), (5, true, 5, 0, 0));
    let (grad, _, plan) = counted(json!({"method": "input-x-gradient"}), &x);
    assert_eq!((plan.rows, plan.gradients, grad), (5, true, 5));
    // Integrated gradients: the path points with gradients, and its delta's forward pass of the
    // inputs and baselines.
    let (grad, plain, plan) = counted(json!({"method": "integrated-gradients", "n_steps": 12}), &x);
    assert_eq!((plan.rows, plan.gradients, grad), (60, true, 60));
    assert_eq!((plan.forward_rows, plain), (10, 10));
    // Feature ablation: 16 groups of 2×2 pixels, then the unperturbed rows.
    let (_, plain, plan) = counted(json!({"method": "feature-ablation", "feature_mask": "grid:2x2"}), &x);
    assert_eq!((plan.rows, plan.gradients, plain), (5 * 17, false, 5 * 17));
    // Without a mask, one group per scalar.
    let (_, plain, plan) = counted(json!({"method": "feature-ablation"}), &x);
    assert_eq!((plan.rows, plain), (5 * (3 * 64 + 1), 5 * (3 * 64 + 1)));
    // Occlusion: 3×4×4 windows with strides 3×2×2 on 3×8×8 are 3×3 windows.
    let (_, plain, plan) = counted(json!({"method": "occlusion", "sliding_window_shapes": [3, 4, 4], "strides": [3, 2, 2]}), &x);
    assert_eq!((plan.rows, plan.gradients, plain), (5 * 10, false, 5 * 10));
}

#[test]
fn methods_that_do_not_state_their_rows_say_none() {
    let x = Tensor::rand([2, 3, 8, 8], (Kind::Float, Device::Cpu));
    let spec = json!({"method": "smoothgrad", "nt_samples": 3});
    let method = Registry::builtin().build(&serde_json::from_value(spec).unwrap(), &[x.shallow_clone()]).unwrap();
    assert!(method.planned_rows(&Inputs::new(x)).is_none());
}
