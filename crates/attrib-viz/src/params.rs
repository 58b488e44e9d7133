//! Visualisation methods, signs and the parameter struct with its validated form.

use std::fmt;
use std::str::FromStr;

use crate::colormap::Colormap;
use crate::error::VizError;

/// How an attribution map is drawn (Captum's `ImageVisualizationMethod`).
///
/// With `n(h, w)` the normalised attribution (see [`crate::normalize_attr`]), `img` the
/// original image on the 0–255 scale and `cmap` the colormap:
///
/// | method | pixel |
/// |---|---|
/// | `heat_map` | `cmap(n)` |
/// | `blended_heat_map` | `alpha_overlay · cmap(n) + (1 − alpha_overlay) · grey` |
/// | `original_image` | `img` |
/// | `masked_image` | `img · n` |
/// | `alpha_scaling` | RGB `img`, alpha `255 · n` |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum VizMethod {
    /// Colour-mapped normalised attribution; needs no image.
    #[default]
    HeatMap,
    /// Heat map composited over a grey version of the image with opacity `alpha_overlay`.
    BlendedHeatMap,
    /// The original image alone (the attribution is still validated but not drawn).
    OriginalImage,
    /// The image multiplied pixel-wise by the normalised attribution (one-signed only).
    MaskedImage,
    /// The image with the normalised attribution as its alpha channel (one-signed only).
    AlphaScaling,
}

impl VizMethod {
    /// All methods, in the order Captum lists them.
    pub const ALL: [VizMethod; 5] = [
        VizMethod::HeatMap,
        VizMethod::BlendedHeatMap,
        VizMethod::OriginalImage,
        VizMethod::MaskedImage,
        VizMethod::AlphaScaling,
    ];

    /// The canonical snake_case name (`heat_map`, `blended_heat_map`, ...), as parsed by `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            VizMethod::HeatMap => "heat_map",
            VizMethod::BlendedHeatMap => "blended_heat_map",
            VizMethod::OriginalImage => "original_image",
            VizMethod::MaskedImage => "masked_image",
            VizMethod::AlphaScaling => "alpha_scaling",
        }
    }

    /// Whether the method draws or uses the original image.
    pub fn needs_image(self) -> bool {
        !matches!(self, VizMethod::HeatMap)
    }

    /// Whether the method can show signed values (`Sign::All`); `masked_image` and
    /// `alpha_scaling` cannot, since a multiplier or an alpha has no sign.
    pub fn supports_all_sign(self) -> bool {
        !matches!(self, VizMethod::MaskedImage | VizMethod::AlphaScaling)
    }
}

impl fmt::Display for VizMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Lower-cases and maps `-` to `_` so `Heat-Map` parses like `heat_map`.
pub(crate) fn canonical(s: &str) -> String {
    s.trim().to_ascii_lowercase().replace('-', "_")
}

impl FromStr for VizMethod {
    type Err = VizError;

    /// Parses `heat_map`, `blended_heat_map`, `original_image`, `masked_image`,
    /// `alpha_scaling` (case-insensitive, `-` accepted for `_`; `heatmap` is an alias).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match canonical(s).as_str() {
            "heat_map" | "heatmap" => Ok(VizMethod::HeatMap),
            "blended_heat_map" | "blended_heatmap" => Ok(VizMethod::BlendedHeatMap),
            "original_image" | "original" => Ok(VizMethod::OriginalImage),
            "masked_image" | "masked" => Ok(VizMethod::MaskedImage),
            "alpha_scaling" | "alpha" => Ok(VizMethod::AlphaScaling),
            _ => Err(VizError::UnknownName {
                kind: "visualisation method",
                given: s.to_string(),
                expected: "heat_map, blended_heat_map, original_image, masked_image, alpha_scaling",
            }),
        }
    }
}

/// Which part of the attribution is shown (Captum's `VisualizeSign`).
///
/// With `s(h, w) = Σ_c a(c, h, w)` the channel sum, the values that are ranked and scaled are
///
/// | sign | values | normalised range |
/// |---|---|---|
/// | `positive` | `max(s, 0)` | [0, 1] |
/// | `negative` | `max(−s, 0)` | [0, 1] |
/// | `absolute_value` | `abs(s)` | [0, 1] |
/// | `all` | `s` (ranked by `abs(s)`) | [−1, 1] |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Sign {
    /// Only positive attributions; negatives become 0.
    Positive,
    /// Only negative attributions, shown by magnitude; positives become 0.
    Negative,
    /// Magnitudes of all attributions (Captum's default).
    #[default]
    AbsoluteValue,
    /// Signed attributions in [−1, 1], drawn with a diverging colormap.
    All,
}

impl Sign {
    /// All signs.
    pub const ALL: [Sign; 4] = [
        Sign::Positive,
        Sign::Negative,
        Sign::AbsoluteValue,
        Sign::All,
    ];

    /// The canonical snake_case name (`positive`, `negative`, `absolute_value`, `all`).
    pub fn name(self) -> &'static str {
        match self {
            Sign::Positive => "positive",
            Sign::Negative => "negative",
            Sign::AbsoluteValue => "absolute_value",
            Sign::All => "all",
        }
    }

    /// The default colormap: `Greens` for positive, `Reds` for negative, `Blues` for
    /// absolute value and the diverging red–white–green map for `all` (as in Captum).
    pub fn default_cmap(self) -> Colormap {
        match self {
            Sign::Positive => Colormap::Greens,
            Sign::Negative => Colormap::Reds,
            Sign::AbsoluteValue => Colormap::Blues,
            Sign::All => Colormap::RedWhiteGreen,
        }
    }

    /// The range `[vmin, vmax]` of normalised values: `[−1, 1]` for `all`, `[0, 1]` otherwise.
    /// A colormap is evaluated at `t = (n − vmin) / (vmax − vmin)`.
    pub fn value_range(self) -> (f64, f64) {
        match self {
            Sign::All => (-1.0, 1.0),
            _ => (0.0, 1.0),
        }
    }
}

impl fmt::Display for Sign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Sign {
    type Err = VizError;

    /// Parses `positive`, `negative`, `absolute_value` (alias `abs`) and `all`
    /// (case-insensitive, `-` accepted for `_`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match canonical(s).as_str() {
            "positive" | "pos" => Ok(Sign::Positive),
            "negative" | "neg" => Ok(Sign::Negative),
            "absolute_value" | "abs" | "absolute" => Ok(Sign::AbsoluteValue),
            "all" => Ok(Sign::All),
            _ => Err(VizError::UnknownName {
                kind: "sign",
                given: s.to_string(),
                expected: "positive, negative, absolute_value, all",
            }),
        }
    }
}

/// Parameters of an image visualisation; validate them with [`VizParams::check`].
///
/// Defaults (Captum's): `method = heat_map`, `sign = absolute_value`, `outlier_perc = 2`,
/// `alpha_overlay = 0.5`; plus `scale = 1` (integer nearest-neighbour upscale of the output)
/// and `cmap = None` (the sign's default colormap, see [`Sign::default_cmap`]).
#[derive(Debug, Clone, PartialEq)]
pub struct VizParams {
    /// How to draw.
    pub method: VizMethod,
    /// Which sign of attribution to show.
    pub sign: Sign,
    /// Percentage of the total |attribution| mass treated as outliers and clipped to 1;
    /// in [0, 100). The scale threshold is the smallest sorted value at which the cumulative
    /// sum reaches `(100 − outlier_perc) %` of the total.
    pub outlier_perc: f64,
    /// Opacity of the heat map in `blended_heat_map`, in [0, 1].
    pub alpha_overlay: f64,
    /// Integer upscale factor (each pixel becomes a `scale × scale` block); at least 1.
    pub scale: u32,
    /// Colormap override; `None` picks the sign's default.
    pub cmap: Option<Colormap>,
}

impl Default for VizParams {
    fn default() -> Self {
        VizParams {
            method: VizMethod::HeatMap,
            sign: Sign::AbsoluteValue,
            outlier_perc: 2.0,
            alpha_overlay: 0.5,
            scale: 1,
            cmap: None,
        }
    }
}

/// Largest accepted `scale`; a 28 × 28 digit at scale 64 is already 1792 pixels wide.
pub const MAX_SCALE: u32 = 256;

impl VizParams {
    /// Default parameters with the given method and sign.
    pub fn new(method: VizMethod, sign: Sign) -> Self {
        VizParams {
            method,
            sign,
            ..VizParams::default()
        }
    }

    /// Sets `method`.
    pub fn method(mut self, method: VizMethod) -> Self {
        self.method = method;
        self
    }

    /// Sets `sign`.
    pub fn sign(mut self, sign: Sign) -> Self {
        self.sign = sign;
        self
    }

    /// Sets `outlier_perc`.
    pub fn outlier_perc(mut self, outlier_perc: f64) -> Self {
        self.outlier_perc = outlier_perc;
        self
    }

    /// Sets `alpha_overlay`.
    pub fn alpha_overlay(mut self, alpha_overlay: f64) -> Self {
        self.alpha_overlay = alpha_overlay;
        self
    }

    /// Sets `scale`.
    pub fn scale(mut self, scale: u32) -> Self {
        self.scale = scale;
        self
    }

    /// Sets `cmap`.
    pub fn cmap(mut self, cmap: Option<Colormap>) -> Self {
        self.cmap = cmap;
        self
    }

    /// Validates the parameters into a [`ValidVizParams`].
    ///
    /// Rejects `outlier_perc` outside [0, 100) or not finite, `alpha_overlay` outside [0, 1]
    /// or not finite, `scale` 0 or above [`MAX_SCALE`], and `sign = all` with
    /// `masked_image` or `alpha_scaling`, and a custom colormap with fewer than 2 anchors.
    pub fn check(&self) -> Result<ValidVizParams, VizError> {
        if !self.outlier_perc.is_finite() || !(0.0..100.0).contains(&self.outlier_perc) {
            return Err(VizError::InvalidParameter {
                name: "outlier_perc",
                reason: format!(
                    "got {}; it is a percentage of the attribution mass clipped as outliers and must lie in [0, 100) (default 2)",
                    self.outlier_perc
                ),
            });
        }
        if !self.alpha_overlay.is_finite() || !(0.0..=1.0).contains(&self.alpha_overlay) {
            return Err(VizError::InvalidParameter {
                name: "alpha_overlay",
                reason: format!(
                    "got {}; it is the heat map's opacity and must lie in [0, 1] (default 0.5)",
                    self.alpha_overlay
                ),
            });
        }
        if self.scale == 0 || self.scale > MAX_SCALE {
            return Err(VizError::InvalidParameter {
                name: "scale",
                reason: format!(
                    "got {}; the upscale factor must be an integer in [1, {MAX_SCALE}] (1 keeps the input size)",
                    self.scale
                ),
            });
        }
        if self.sign == Sign::All && !self.method.supports_all_sign() {
            return Err(VizError::InvalidParameter {
                name: "sign",
                reason: format!(
                    "`{}` cannot show signed attributions (sign `all`); use `positive`, `negative` or `absolute_value`, or the method `heat_map`/`blended_heat_map`",
                    self.method
                ),
            });
        }
        if let Some(cmap) = &self.cmap {
            cmap.check()?;
        }
        Ok(ValidVizParams {
            params: self.clone(),
        })
    }
}

/// Parameters that passed [`VizParams::check`]; the only form the renderers accept.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidVizParams {
    params: VizParams,
}

impl ValidVizParams {
    /// The visualisation method.
    pub fn method(&self) -> VizMethod {
        self.params.method
    }

    /// The sign.
    pub fn sign(&self) -> Sign {
        self.params.sign
    }

    /// The outlier percentage, in [0, 100).
    pub fn outlier_perc(&self) -> f64 {
        self.params.outlier_perc
    }

    /// The heat-map opacity for `blended_heat_map`, in [0, 1].
    pub fn alpha_overlay(&self) -> f64 {
        self.params.alpha_overlay
    }

    /// The integer upscale factor, at least 1.
    pub fn scale(&self) -> u32 {
        self.params.scale
    }

    /// The colormap in effect: the override if given, else [`Sign::default_cmap`].
    pub fn cmap(&self) -> Colormap {
        self.params
            .cmap
            .clone()
            .unwrap_or_else(|| self.params.sign.default_cmap())
    }

    /// The unvalidated parameters these came from.
    pub fn params(&self) -> &VizParams {
        &self.params
    }
}
