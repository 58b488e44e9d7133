//! Parameter validation and name parsing.

use attrib_viz::{Colormap, Sign, VizError, VizMethod, VizParams};

#[test]
fn defaults_match_captum() {
    let p = VizParams::default();
    assert_eq!(p.method, VizMethod::HeatMap);
    assert_eq!(p.sign, Sign::AbsoluteValue);
    assert_eq!(p.outlier_perc, 2.0);
    assert_eq!(p.alpha_overlay, 0.5);
    assert_eq!(p.scale, 1);
    assert_eq!(p.cmap, None);
    let v = p.check().unwrap();
    assert_eq!(v.cmap(), Colormap::Blues);
    assert_eq!(Sign::Positive.default_cmap(), Colormap::Greens);
    assert_eq!(Sign::Negative.default_cmap(), Colormap::Reds);
    assert_eq!(Sign::All.default_cmap(), Colormap::RedWhiteGreen);
}

fn rejected(p: VizParams, name: &str) {
    match p.check() {
        Err(VizError::InvalidParameter { name: n, reason }) => {
            assert_eq!(n, name, "{reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected InvalidParameter {name}, got {other:?}"),
    }
}

#[test]
fn check_rejects_bad_values() {
    let base = VizParams::default();
    rejected(base.clone().outlier_perc(-0.1), "outlier_perc");
    rejected(base.clone().outlier_perc(100.0), "outlier_perc");
    rejected(base.clone().outlier_perc(f64::NAN), "outlier_perc");
    rejected(base.clone().alpha_overlay(1.5), "alpha_overlay");
    rejected(base.clone().alpha_overlay(-0.5), "alpha_overlay");
    rejected(base.clone().alpha_overlay(f64::INFINITY), "alpha_overlay");
    rejected(base.clone().scale(0), "scale");
    rejected(base.clone().scale(attrib_viz::MAX_SCALE + 1), "scale");
    rejected(VizParams::new(VizMethod::MaskedImage, Sign::All), "sign");
    rejected(VizParams::new(VizMethod::AlphaScaling, Sign::All), "sign");
    rejected(
        base.clone().cmap(Some(Colormap::Custom(vec![[0, 0, 0]]))),
        "cmap",
    );
    // Edges that are accepted.
    assert!(base
        .clone()
        .outlier_perc(0.0)
        .alpha_overlay(0.0)
        .check()
        .is_ok());
    assert!(base
        .clone()
        .outlier_perc(99.9)
        .alpha_overlay(1.0)
        .check()
        .is_ok());
    assert!(VizParams::new(VizMethod::BlendedHeatMap, Sign::All)
        .check()
        .is_ok());
}

#[test]
fn names_parse_and_display() {
    for m in VizMethod::ALL {
        assert_eq!(m.to_string().parse::<VizMethod>().unwrap(), m);
    }
    for s in Sign::ALL {
        assert_eq!(s.to_string().parse::<Sign>().unwrap(), s);
    }
    assert_eq!(
        "Blended-Heat-Map".parse::<VizMethod>().unwrap(),
        VizMethod::BlendedHeatMap
    );
    assert_eq!("abs".parse::<Sign>().unwrap(), Sign::AbsoluteValue);
    assert_eq!("bwr".parse::<Colormap>().unwrap(), Colormap::BlueWhiteRed);
    assert_eq!("greens".parse::<Colormap>().unwrap(), Colormap::Greens);
    let err = "heatmapp".parse::<VizMethod>().unwrap_err();
    assert!(err.to_string().contains("blended_heat_map"), "{err}");
    assert!(matches!(
        "both".parse::<Sign>(),
        Err(VizError::UnknownName { kind: "sign", .. })
    ));
    assert!("viridis".parse::<Colormap>().is_err());
}

#[test]
fn custom_colormap_interpolates() {
    let c = Colormap::Custom(vec![[0, 0, 0], [100, 200, 50]]);
    assert_eq!(c.rgb8(0.5), [50, 100, 25]);
    assert_eq!(c.rgb8(-3.0), [0, 0, 0]);
    assert_eq!(c.rgb8(7.0), [100, 200, 50]);
    assert_eq!(c.rgb8(f64::NAN), [0, 0, 0]);
}
