//! Colormaps: piecewise-linear interpolation between equally spaced anchor colours.

use std::fmt;
use std::str::FromStr;

use crate::error::VizError;
use crate::params::canonical;

/// ColorBrewer 9-class sequential "Greens" (light to dark).
const GREENS: [[u8; 3]; 9] = [
    [0xf7, 0xfc, 0xf5],
    [0xe5, 0xf5, 0xe0],
    [0xc7, 0xe9, 0xc0],
    [0xa1, 0xd9, 0x9b],
    [0x74, 0xc4, 0x76],
    [0x41, 0xab, 0x5d],
    [0x23, 0x8b, 0x45],
    [0x00, 0x6d, 0x2c],
    [0x00, 0x44, 0x1b],
];

/// ColorBrewer 9-class sequential "Reds" (light to dark).
const REDS: [[u8; 3]; 9] = [
    [0xff, 0xf5, 0xf0],
    [0xfe, 0xe0, 0xd2],
    [0xfc, 0xbb, 0xa1],
    [0xfc, 0x92, 0x72],
    [0xfb, 0x6a, 0x4a],
    [0xef, 0x3b, 0x2c],
    [0xcb, 0x18, 0x1d],
    [0xa5, 0x0f, 0x15],
    [0x67, 0x00, 0x0d],
];

/// ColorBrewer 9-class sequential "Blues" (light to dark).
const BLUES: [[u8; 3]; 9] = [
    [0xf7, 0xfb, 0xff],
    [0xde, 0xeb, 0xf7],
    [0xc6, 0xdb, 0xef],
    [0x9e, 0xca, 0xe1],
    [0x6b, 0xae, 0xd6],
    [0x42, 0x92, 0xc6],
    [0x21, 0x71, 0xb5],
    [0x08, 0x51, 0x9c],
    [0x08, 0x30, 0x6b],
];

/// Red (−1) – white (0) – green (+1); green is the web colour `#008000`.
const RED_WHITE_GREEN: [[u8; 3]; 3] = [[255, 0, 0], [255, 255, 255], [0, 128, 0]];

/// Blue (−1) – white (0) – red (+1).
const BLUE_WHITE_RED: [[u8; 3]; 3] = [[0, 0, 255], [255, 255, 255], [255, 0, 0]];

/// Black to white.
const GRAY: [[u8; 3]; 2] = [[0, 0, 0], [255, 255, 255]];

/// A colormap: `n ≥ 2` anchor colours `c_0 … c_{n−1}` placed at `t = k / (n − 1)`.
///
/// For `t ∈ [0, 1]` (values outside are clamped, NaN counts as 0), with `p = t (n − 1)`,
/// `k = min(⌊p⌋, n − 2)` and `f = p − k`, the colour is `c_k + f (c_{k+1} − c_k)` per channel,
/// rounded to the nearest byte. Unlike matplotlib there is no 256-entry lookup table, so
/// colours at anchor positions are exact.
///
/// The sequential maps are the ColorBrewer 9-class schemes (Cynthia Brewer, colorbrewer2.org),
/// the same anchors matplotlib uses for its maps of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Colormap {
    /// ColorBrewer "Greens", 9 anchors from `#f7fcf5` (t = 0) to `#00441b` (t = 1); default for `positive`.
    Greens,
    /// ColorBrewer "Reds", 9 anchors from `#fff5f0` (t = 0) to `#67000d` (t = 1); default for `negative`.
    Reds,
    /// ColorBrewer "Blues", 9 anchors from `#f7fbff` (t = 0) to `#08306b` (t = 1); default for `absolute_value`.
    Blues,
    /// Diverging red `(255, 0, 0)` – white `(255, 255, 255)` – green `(0, 128, 0)`; default for `all`
    /// (−1 is red, 0 white, +1 green, as Captum's "RdWhGn").
    RedWhiteGreen,
    /// Diverging blue `(0, 0, 255)` – white – red `(255, 0, 0)` (−1 blue, +1 red).
    BlueWhiteRed,
    /// Black `(0, 0, 0)` to white `(255, 255, 255)`.
    Gray,
    /// Your own anchors (at least 2), equally spaced from t = 0 to t = 1.
    Custom(Vec<[u8; 3]>),
}

impl Colormap {
    /// The anchor colours, from t = 0 to t = 1.
    pub fn anchors(&self) -> &[[u8; 3]] {
        match self {
            Colormap::Greens => &GREENS,
            Colormap::Reds => &REDS,
            Colormap::Blues => &BLUES,
            Colormap::RedWhiteGreen => &RED_WHITE_GREEN,
            Colormap::BlueWhiteRed => &BLUE_WHITE_RED,
            Colormap::Gray => &GRAY,
            Colormap::Custom(anchors) => anchors,
        }
    }

    /// The canonical name, as parsed by `FromStr` (`custom` for [`Colormap::Custom`]).
    pub fn name(&self) -> &'static str {
        match self {
            Colormap::Greens => "greens",
            Colormap::Reds => "reds",
            Colormap::Blues => "blues",
            Colormap::RedWhiteGreen => "red_white_green",
            Colormap::BlueWhiteRed => "blue_white_red",
            Colormap::Gray => "gray",
            Colormap::Custom(_) => "custom",
        }
    }

    /// Checks that a custom map has at least 2 anchors.
    pub(crate) fn check(&self) -> Result<(), VizError> {
        if self.anchors().len() < 2 {
            return Err(VizError::InvalidParameter {
                name: "cmap",
                reason: format!(
                    "a custom colormap needs at least 2 anchor colours, got {}",
                    self.anchors().len()
                ),
            });
        }
        Ok(())
    }

    /// The colour at `t` as unrounded channel values in [0, 255] (see the type's formula).
    /// A map with fewer than 2 anchors gives its only anchor, or black when empty.
    pub fn eval(&self, t: f64) -> [f64; 3] {
        let a = self.anchors();
        match a.len() {
            0 => return [0.0; 3],
            1 => return a[0].map(f64::from),
            _ => {}
        }
        let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
        let n = a.len();
        let p = t * (n - 1) as f64;
        let k = (p.floor() as usize).min(n - 2);
        let f = p - k as f64;
        let mut out = [0.0; 3];
        for (ch, o) in out.iter_mut().enumerate() {
            let lo = f64::from(a[k][ch]);
            let hi = f64::from(a[k + 1][ch]);
            *o = lo + f * (hi - lo);
        }
        out
    }

    /// The colour at `t`, each channel rounded to the nearest byte.
    pub fn rgb8(&self, t: f64) -> [u8; 3] {
        self.eval(t).map(to_byte)
    }
}

/// Rounds to the nearest integer and clamps into [0, 255] (NaN gives 0).
pub(crate) fn to_byte(v: f64) -> u8 {
    if v.is_nan() {
        0
    } else {
        v.round().clamp(0.0, 255.0) as u8
    }
}

impl fmt::Display for Colormap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Colormap {
    type Err = VizError;

    /// Parses `greens`, `reds`, `blues`, `red_white_green` (alias `rdwhgn`),
    /// `blue_white_red` (alias `bwr`) and `gray` (alias `grey`), case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match canonical(s).as_str() {
            "greens" => Ok(Colormap::Greens),
            "reds" => Ok(Colormap::Reds),
            "blues" => Ok(Colormap::Blues),
            "red_white_green" | "rdwhgn" => Ok(Colormap::RedWhiteGreen),
            "blue_white_red" | "bwr" => Ok(Colormap::BlueWhiteRed),
            "gray" | "grey" => Ok(Colormap::Gray),
            _ => Err(VizError::UnknownName {
                kind: "colormap",
                given: s.to_string(),
                expected: "greens, reds, blues, red_white_green, blue_white_red, gray",
            }),
        }
    }
}
