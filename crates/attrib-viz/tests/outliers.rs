//! The cumulative-sum outlier threshold.

use attrib_viz::{cumulative_sum_threshold, normalize_attr, Sign};
use ndarray::{Array, Array3};

#[test]
fn threshold_by_hand() {
    // Sorted 1, 2, 3, 4 -> cumulative 1, 3, 6, 10; total 10.
    let v = [4.0, 1.0, 3.0, 2.0];
    assert_eq!(cumulative_sum_threshold(&v, 100.0), Some(4.0)); // needs 10
    assert_eq!(cumulative_sum_threshold(&v, 60.0), Some(3.0)); // needs 6
    assert_eq!(cumulative_sum_threshold(&v, 59.0), Some(3.0)); // needs 5.9
    assert_eq!(cumulative_sum_threshold(&v, 30.0), Some(2.0)); // needs 3
    assert_eq!(cumulative_sum_threshold(&v, 0.0), Some(1.0)); // first value
    assert_eq!(cumulative_sum_threshold(&[], 50.0), None);
}

fn grid_1_to_8_and_50() -> Array3<f32> {
    Array::from_shape_vec(
        (1, 3, 3),
        vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 50.0],
    )
    .unwrap()
}

#[test]
fn outlier_perc_zero_maps_max_to_one() {
    let a = grid_1_to_8_and_50();
    let n = normalize_attr(a.view(), Sign::AbsoluteValue, 0.0).unwrap();
    assert_eq!(n[[2, 2]], 1.0);
    assert_eq!(n[[2, 1]], 8.0 / 50.0);
    assert_eq!(n[[0, 0]], 1.0 / 50.0);
}

#[test]
fn large_outlier_is_clipped_at_a_positive_percentile() {
    let a = grid_1_to_8_and_50();
    // Total 86; with outlier_perc = 60 the target is 0.4 * 86 = 34.4; cumulative sums
    // 1, 3, 6, 10, 15, 21, 28, 36 reach it at 8, so T = 8.
    let n = normalize_attr(a.view(), Sign::AbsoluteValue, 60.0).unwrap();
    assert_eq!(n[[2, 2]], 1.0); // 50 / 8 clipped
    assert_eq!(n[[2, 1]], 1.0); // 8 / 8
    assert_eq!(n[[1, 0]], 0.5); // 4 / 8
    assert_eq!(n[[0, 0]], 0.125); // 1 / 8
                                  // Signed: a negative outlier clips to -1.
    let mut b = a.clone();
    b[[0, 2, 2]] = -50.0;
    let n = normalize_attr(b.view(), Sign::All, 60.0).unwrap();
    assert_eq!(n[[2, 2]], -1.0);
    assert_eq!(n[[1, 0]], 0.5);
}

#[test]
fn default_two_percent_clips_a_mild_outlier_among_many_values() {
    // 99 values of 1 and one of 1.5: total 100.5, target 0.98 * 100.5 = 98.49, reached by the
    // 99th one (cumulative 99), so T = 1 and the 1.5 clips to 1.
    let mut v = vec![1.0f32; 100];
    v[42] = 1.5;
    let a = Array::from_shape_vec((1, 10, 10), v).unwrap();
    let n = normalize_attr(a.view(), Sign::Positive, 2.0).unwrap();
    assert!(n.iter().all(|&x| x == 1.0));
    // Without clipping the outlier keeps the top: 1 / 1.5.
    let n0 = normalize_attr(a.view(), Sign::Positive, 0.0).unwrap();
    assert_eq!(n0[[4, 2]], 1.0);
    assert_eq!(n0[[0, 0]], 1.0 / 1.5);
}
