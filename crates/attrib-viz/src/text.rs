//! Token attributions as shaded text (Captum's `visualize_text` idea), written as HTML.
//!
//! Each row is a sentence: every token gets a background colour from the red–white–green
//! colormap ([`Colormap::RedWhiteGreen`]) at `t = (1 + n) / 2`, where `n = a / max |a|` is the
//! token's attribution divided by the largest absolute attribution of its row (so the strongest
//! token of each row is fully green or red, and a token with no attribution is white). The raw
//! value shows as the token's tooltip, and each row ends with the sum of its attributions.

use crate::colormap::Colormap;
use crate::error::VizError;

/// One sentence and its token attributions.
#[derive(Debug, Clone, PartialEq)]
pub struct TextRow {
    /// What the row is (e.g. `row 0: predicted positive (0.93), target positive`), shown above
    /// the tokens; may be empty.
    pub caption: String,
    /// The tokens, in order.
    pub tokens: Vec<String>,
    /// One attribution per token.
    pub attributions: Vec<f32>,
}

impl TextRow {
    fn check(&self, i: usize) -> Result<(), VizError> {
        if self.tokens.len() != self.attributions.len() {
            return Err(VizError::ShapeMismatch(format!(
                "text row {i} has {} tokens but {} attributions",
                self.tokens.len(),
                self.attributions.len()
            )));
        }
        let count = self.attributions.iter().filter(|a| !a.is_finite()).count();
        if count > 0 {
            return Err(VizError::NonFinite { what: "token attributions", count });
        }
        Ok(())
    }
}

/// The colour of a token whose attribution, divided by its row's largest absolute attribution,
/// is `n` (in `[-1, 1]`; clamped): red for −1, white for 0, green (`#008000`) for +1.
pub fn token_color(n: f32) -> [u8; 3] {
    Colormap::RedWhiteGreen.rgb8((1.0 + f64::from(n.clamp(-1.0, 1.0))) / 2.0)
}

/// Escape `&`, `<`, `>`, `"` and `'` for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The rows as an HTML fragment (a `<div class="attrib-text">` with one paragraph per row),
/// for embedding in a page; the styles are inline, so the fragment needs no stylesheet.
pub fn render_text_html(rows: &[TextRow]) -> Result<String, VizError> {
    let mut html = String::from("<div class=\"attrib-text\" style=\"font-family:sans-serif;line-height:2\">\n");
    for (i, row) in rows.iter().enumerate() {
        row.check(i)?;
        let scale = row.attributions.iter().fold(0f32, |m, a| m.max(a.abs()));
        let total: f64 = row.attributions.iter().map(|&a| f64::from(a)).sum();
        html.push_str("<p style=\"margin:0.3em 0\">");
        if !row.caption.is_empty() {
            html.push_str(&format!("<span style=\"color:#555;font-size:90%\">{}</span><br>", escape_html(&row.caption)));
        }
        for (token, &a) in row.tokens.iter().zip(&row.attributions) {
            let n = if scale > 0.0 { a / scale } else { 0.0 };
            let [r, g, b] = token_color(n);
            // Dark backgrounds get white text.
            let fg = if f32::from(r) * 0.299 + f32::from(g) * 0.587 + f32::from(b) * 0.114 < 110.0 { "#fff" } else { "#000" };
            html.push_str(&format!(
                "<span title=\"{a:.4e}\" style=\"background:#{r:02x}{g:02x}{b:02x};color:{fg};padding:0.1em 0.25em;margin:0 1px;border-radius:3px\">{}</span>",
                escape_html(token)
            ));
        }
        html.push_str(&format!(" <span style=\"color:#555;font-size:90%\">(sum {total:.4})</span></p>\n"));
    }
    html.push_str(
        "<p style=\"color:#555;font-size:90%\">green: the token raises the explained output, red: lowers it; \
         shade relative to the row's largest |attribution|; hover a token for its value</p>\n</div>\n",
    );
    Ok(html)
}

/// A self-contained HTML page with the rows ([`render_text_html`]) under a title.
pub fn render_text_page(title: &str, rows: &[TextRow]) -> Result<String, VizError> {
    let body = render_text_html(rows)?;
    let title = escape_html(title);
    Ok(format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h2 style=\"font-family:sans-serif\">{title}</h2>\n{body}</body></html>\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tokens: &[&str], a: &[f32]) -> TextRow {
        TextRow { caption: "row 0".into(), tokens: tokens.iter().map(|s| s.to_string()).collect(), attributions: a.to_vec() }
    }

    /// The style attribute of the span around `token`.
    fn style_of<'a>(html: &'a str, token: &str) -> &'a str {
        let end = html.find(&format!(">{token}</span>")).expect("token in the page");
        let start = html[..end].rfind("style=\"").expect("a style");
        &html[start + 7..end]
    }

    #[test]
    fn colours_follow_the_sign_relative_to_the_row_maximum() {
        assert_eq!(token_color(1.0), [0, 128, 0]);
        assert_eq!(token_color(-1.0), [255, 0, 0]);
        assert_eq!(token_color(0.0), [255, 255, 255]);
        assert_eq!(token_color(7.0), token_color(1.0));
        let html = render_text_html(&[row(&["good", "the", "bad"], &[2.0, 0.0, -1.0])]).unwrap();
        // good: n = 1 (green), the: white, bad: n = -0.5 (half-way to red).
        assert!(style_of(&html, "good").starts_with("background:#008000;color:#fff;"), "{html}");
        assert!(style_of(&html, "the").starts_with("background:#ffffff;color:#000;"), "{html}");
        assert_eq!(token_color(-0.5), [255, 128, 128]);
        assert!(style_of(&html, "bad").starts_with("background:#ff8080;color:#000;"), "{html}");
        assert!(html.contains("(sum 1.0000)"));
    }

    #[test]
    fn tokens_and_captions_are_escaped() {
        let mut r = row(&["<b>", "a&b"], &[0.0, 0.0]);
        r.caption = "\"quoted\"".into();
        let html = render_text_page("x <y>", &[r]).unwrap();
        assert!(html.contains("&lt;b&gt;") && html.contains("a&amp;b") && html.contains("&quot;quoted&quot;"));
        assert!(html.contains("<title>x &lt;y&gt;</title>"));
        assert!(!html.contains("<b>"));
    }

    #[test]
    fn mismatched_or_non_finite_rows_are_errors() {
        let err = render_text_html(&[row(&["a", "b"], &[1.0])]).unwrap_err();
        assert!(err.to_string().contains("2 tokens but 1 attributions"), "{err}");
        let err = render_text_html(&[row(&["a"], &[f32::NAN])]).unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }
}
