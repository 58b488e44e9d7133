//! The text grammars of targets, baselines, feature masks and window sizes.
//!
//! The command line, method specs (JSON/TOML) and library users all write these the same way;
//! each grammar parses with [`FromStr`] and (de)serialises as the same text, so a spec written by
//! hand, a flag and a report all agree.
//!
//! | spec | grammar |
//! |---|---|
//! | [`TargetSpec`] | `argmax`, `none`, a class index `N`, or an int64 `.npy` file of one index per row |
//! | [`BaselineSpec`] | `zeros`, a number, `blur:SIGMA`, `uniform:LOW,HIGH`, or a float `.npy` file |
//! | [`MaskSpec`] | `grid:HxW`, `slic:N`, an integer `.npy` file, or a label image (`.png`/`.jpg`) |
//! | [`Sizes`] | comma-separated integers, `3,8,8` (or a JSON array) |
//!
//! Files are named here and read by the crates that can read them (`attrib::spec` in the facade
//! turns specs into [`crate::Target`], [`crate::Baseline`] and [`crate::FeatureMask`] values).
//!
//! ```
//! use attrib_core::spec::{BaselineSpec, MaskSpec, Sizes, TargetSpec};
//! assert_eq!("blur:2.5".parse::<BaselineSpec>().unwrap(), BaselineSpec::Blur(2.5));
//! assert_eq!("grid:4x4".parse::<MaskSpec>().unwrap(), MaskSpec::Grid { height: 4, width: 4 });
//! assert_eq!("3,8,8".parse::<Sizes>().unwrap(), Sizes(vec![3, 8, 8]));
//! assert_eq!("argmax".parse::<TargetSpec>().unwrap().to_string(), "argmax");
//! ```

use crate::error::{AttribError, Result};
use crate::target::Target;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// Implement `Serialize`/`Deserialize` as the `Display`/`FromStr` text (numbers accepted where
/// a grammar takes one, so `{"baselines": 0.5}` and `{"baselines": "0.5"}` agree).
macro_rules! text_serde {
    ($t:ty, $what:literal) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<$t, D::Error> {
                let v = serde_json::Value::deserialize(d)?;
                let text = match &v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Number(n) => n.to_string(),
                    other => return Err(serde::de::Error::custom(format!("expected {} as text, got {other}", $what))),
                };
                text.parse::<$t>().map_err(serde::de::Error::custom)
            }
        }
    };
}

/// Which output to explain, as written on the command line or in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// `argmax`, `none` or a class index.
    Target(Target),
    /// An int64 `.npy` file with one class index per row.
    File(PathBuf),
}

impl FromStr for TargetSpec {
    type Err = AttribError;

    fn from_str(spec: &str) -> Result<TargetSpec> {
        let s = spec.trim();
        match s {
            "argmax" => return Ok(TargetSpec::Target(Target::Argmax)),
            "none" => return Ok(TargetSpec::Target(Target::None)),
            _ => {}
        }
        if let Ok(c) = s.parse::<i64>() {
            return Ok(TargetSpec::Target(Target::Class(c)));
        }
        if is_file_spec(s, &[".npy"]) {
            return Ok(TargetSpec::File(PathBuf::from(s)));
        }
        Err(AttribError::param("target", format!("`{spec}` is not a class index, `argmax`, `none` or a .npy file")))
    }
}

impl fmt::Display for TargetSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetSpec::Target(Target::Argmax) => f.write_str("argmax"),
            TargetSpec::Target(Target::None) => f.write_str("none"),
            TargetSpec::Target(Target::Class(c)) => write!(f, "{c}"),
            TargetSpec::Target(Target::PerSample(v)) => {
                f.write_str(&v.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","))
            }
            TargetSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}
text_serde!(TargetSpec, "a target");

/// The reference input of one model input, as written in a spec.
#[derive(Debug, Clone, PartialEq)]
pub enum BaselineSpec {
    /// `zeros`: all zeros (Captum's default).
    Zeros,
    /// A number: the same value everywhere.
    Scalar(f64),
    /// `blur:SIGMA`: the input blurred with a Gaussian of standard deviation `SIGMA` pixels over
    /// its last two dimensions (Sturmfels et al. 2020, "Visualizing the Impact of Feature
    /// Attribution Baselines").
    Blur(f64),
    /// `uniform:LOW,HIGH`: independent uniform noise in `[LOW, HIGH)`, drawn from the method's
    /// seed.
    Uniform {
        /// Lower end.
        low: f64,
        /// Upper end.
        high: f64,
    },
    /// A float `.npy` file: a tensor that broadcasts to the input (or, for methods that take a
    /// distribution of baselines, samples `[S, ...]`).
    File(PathBuf),
}

impl FromStr for BaselineSpec {
    type Err = AttribError;

    fn from_str(spec: &str) -> Result<BaselineSpec> {
        let s = spec.trim();
        let bad = |why: &str| AttribError::param("baselines", format!("`{spec}`: {why}"));
        if s == "zeros" || s == "zero" {
            return Ok(BaselineSpec::Zeros);
        }
        if let Ok(v) = s.parse::<f64>() {
            if !v.is_finite() {
                return Err(bad("a scalar baseline must be a finite number"));
            }
            return Ok(BaselineSpec::Scalar(v));
        }
        if let Some(rest) = s.strip_prefix("blur:") {
            let sigma = rest.trim().parse::<f64>().map_err(|_| bad("write the blur as `blur:SIGMA`, e.g. `blur:5`"))?;
            if !(sigma.is_finite() && sigma > 0.0) {
                return Err(bad("the blur's standard deviation must be a positive number of pixels"));
            }
            return Ok(BaselineSpec::Blur(sigma));
        }
        if let Some(rest) = s.strip_prefix("uniform:") {
            let (lo, hi) = rest
                .split_once(',')
                .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)))
                .ok_or_else(|| bad("write uniform noise as `uniform:LOW,HIGH`, e.g. `uniform:0,1`"))?;
            if !(lo.is_finite() && hi.is_finite() && lo < hi) {
                return Err(bad("uniform noise needs finite LOW < HIGH"));
            }
            return Ok(BaselineSpec::Uniform { low: lo, high: hi });
        }
        if is_file_spec(s, &[".npy"]) {
            return Ok(BaselineSpec::File(PathBuf::from(s)));
        }
        Err(bad("not `zeros`, a number, `blur:SIGMA`, `uniform:LOW,HIGH` or a .npy file"))
    }
}

impl fmt::Display for BaselineSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BaselineSpec::Zeros => f.write_str("zeros"),
            BaselineSpec::Scalar(v) => write!(f, "{v}"),
            BaselineSpec::Blur(s) => write!(f, "blur:{s}"),
            BaselineSpec::Uniform { low, high } => write!(f, "uniform:{low},{high}"),
            BaselineSpec::File(p) => write!(f, "{}", p.display()),
        }
    }
}
text_serde!(BaselineSpec, "a baseline");

/// Feature groups of one input, as written in a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MaskSpec {
    /// `grid:HxW`: patches of `H × W` pixels over the last two dimensions.
    Grid {
        /// Patch height.
        height: i64,
        /// Patch width.
        width: i64,
    },
    /// `slic:N`: about `N` SLIC superpixels per image, computed on the input.
    Slic(usize),
    /// An integer `.npy` file of group ids that broadcasts to the input.
    File(PathBuf),
    /// A label image (`.png`, `.jpg`): one group per distinct label.
    LabelImage(PathBuf),
}

impl FromStr for MaskSpec {
    type Err = AttribError;

    fn from_str(spec: &str) -> Result<MaskSpec> {
        let s = spec.trim();
        if let Some(rest) = s.strip_prefix("grid:") {
            let (h, w) = rest
                .split_once(['x', 'X'])
                .and_then(|(a, b)| Some((a.trim().parse::<i64>().ok()?, b.trim().parse::<i64>().ok()?)))
                .filter(|&(h, w)| h > 0 && w > 0)
                .ok_or_else(|| {
                    AttribError::param("feature_mask", format!("`{s}`: write the patch size as `grid:HxW` with positive sizes, e.g. `grid:4x4`"))
                })?;
            return Ok(MaskSpec::Grid { height: h, width: w });
        }
        if let Some(rest) = s.strip_prefix("slic:") {
            let n = rest.trim().parse::<usize>().ok().filter(|&n| n > 0).ok_or_else(|| {
                AttribError::param("feature_mask", format!("`{s}`: give the number of superpixels, e.g. `slic:50`"))
            })?;
            return Ok(MaskSpec::Slic(n));
        }
        let lower = s.to_ascii_lowercase();
        if lower.ends_with(".png") || lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
            return Ok(MaskSpec::LabelImage(PathBuf::from(s)));
        }
        if is_file_spec(s, &[".npy"]) {
            return Ok(MaskSpec::File(PathBuf::from(s)));
        }
        Err(AttribError::param("feature_mask", format!("`{s}` is not a .npy/.png mask, `grid:HxW` or `slic:N`")))
    }
}

impl fmt::Display for MaskSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskSpec::Grid { height, width } => write!(f, "grid:{height}x{width}"),
            MaskSpec::Slic(n) => write!(f, "slic:{n}"),
            MaskSpec::File(p) | MaskSpec::LabelImage(p) => write!(f, "{}", p.display()),
        }
    }
}
text_serde!(MaskSpec, "a feature mask");

/// A list of sizes, one per non-batch dimension (occlusion windows and strides): `3,8,8`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes(pub Vec<i64>);

impl FromStr for Sizes {
    type Err = AttribError;

    fn from_str(spec: &str) -> Result<Sizes> {
        spec.split(',')
            .map(|v| v.trim().parse::<i64>().ok().filter(|&v| v > 0))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty())
            .map(Sizes)
            .ok_or_else(|| {
                AttribError::param("sizes", format!("`{spec}` is not a comma-separated list of positive integers (e.g. `3,8,8`)"))
            })
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","))
    }
}

impl Serialize for Sizes {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Sizes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Sizes, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
            serde_json::Value::Number(n) => n.to_string().parse().map_err(serde::de::Error::custom),
            serde_json::Value::Array(a) => {
                let text = a.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",");
                text.parse().map_err(serde::de::Error::custom)
            }
            other => Err(serde::de::Error::custom(format!("expected sizes like \"3,8,8\" or [3, 8, 8], got {other}"))),
        }
    }
}

/// A path-like spec: it names an existing file or ends in one of `exts`.
fn is_file_spec(s: &str, exts: &[&str]) -> bool {
    let lower = s.to_ascii_lowercase();
    exts.iter().any(|e| lower.ends_with(e)) || std::path::Path::new(s).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammars_round_trip_through_text_and_serde() {
        for s in ["zeros", "0.5", "-1", "blur:5", "uniform:0,1", "ref.npy"] {
            let b: BaselineSpec = s.parse().unwrap();
            assert_eq!(b.to_string().parse::<BaselineSpec>().unwrap(), b, "{s}");
            let json = serde_json::to_value(&b).unwrap();
            assert_eq!(serde_json::from_value::<BaselineSpec>(json).unwrap(), b);
        }
        assert_eq!(serde_json::from_value::<BaselineSpec>(serde_json::json!(0.25)).unwrap(), BaselineSpec::Scalar(0.25));
        for s in ["grid:4x2", "slic:50", "m.npy", "labels.png"] {
            let m: MaskSpec = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
        }
        assert_eq!(serde_json::from_value::<Sizes>(serde_json::json!([3, 8, 8])).unwrap(), Sizes(vec![3, 8, 8]));
        assert_eq!(serde_json::from_value::<Sizes>(serde_json::json!(2)).unwrap(), Sizes(vec![2]));
        assert_eq!("7".parse::<TargetSpec>().unwrap(), TargetSpec::Target(Target::Class(7)));
        assert_eq!("none".parse::<TargetSpec>().unwrap(), TargetSpec::Target(Target::None));
        assert_eq!("t.npy".parse::<TargetSpec>().unwrap(), TargetSpec::File("t.npy".into()));
    }

    #[test]
    fn bad_specs_say_what_to_write() {
        let msg = |e: AttribError| e.to_string();
        assert!(msg("blur:x".parse::<BaselineSpec>().unwrap_err()).contains("blur:SIGMA"));
        assert!(msg("blur:-1".parse::<BaselineSpec>().unwrap_err()).contains("positive"));
        assert!(msg("uniform:1,0".parse::<BaselineSpec>().unwrap_err()).contains("LOW < HIGH"));
        assert!(msg("1e400".parse::<BaselineSpec>().unwrap_err()).contains("finite"));
        assert!(msg("pink".parse::<BaselineSpec>().unwrap_err()).contains("zeros"));
        assert!(msg("grid:0x2".parse::<MaskSpec>().unwrap_err()).contains("grid:HxW"));
        assert!(msg("slic:".parse::<MaskSpec>().unwrap_err()).contains("slic:50"));
        assert!(msg("3,x".parse::<Sizes>().unwrap_err()).contains("3,8,8"));
        assert!(msg("0,1".parse::<Sizes>().unwrap_err()).contains("positive"));
        assert!(msg("maybe".parse::<TargetSpec>().unwrap_err()).contains("argmax"));
    }
}
