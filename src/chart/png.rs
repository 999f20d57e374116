//! The chart as a PNG, for the digest e-mail (mail clients drop SVG): a self-contained SVG
//! (colours as attributes, no classes, no stylesheet, no `<text>`) rasterised in process by
//! `resvg`, at twice the pixel density of its 600 px width.
//!
//! Text (grid values, bucket labels, the legend) is drawn as glyph outlines read with
//! `ttf-parser` from an embedded font: DejaVu Sans cut to printable ASCII and `× – …`
//! (`font/DejaVuSans-subset.ttf`, 20 192 bytes; its licence is `font/LICENSE`). Azure Flex
//! Consumption's Linux guarantees no system fonts, so the font travels in the binary. Measured
//! on release builds with this crate's profile (thin LTO, stripped; BENCHMARKS.md): a probe
//! binary gains 1.19 MB from `resvg` without text, 2.17 MB more from its `text` feature
//! (rustybuzz, fontdb, Unicode tables), but only 0.09 MB from outlines through `ttf-parser` plus
//! the font. So text stays in the picture, where a reader expects axis labels and a legend, and
//! the handler grows by 1.25 MB in all (10.83 → 12.09 MB) rather than about 3.4 MB.
//! Simple left-to-right advance widths, no shaping or kerning: enough for digits, times, month
//! names and our action labels.
//!
//! Customer-controlled text can reach the picture only as a legend label (an unknown action
//! code): it is cut to [`MAX_LABEL_CHARS`] and every character the font lacks is drawn as `?`;
//! as outlines it never enters the SVG as text. The SVG's `<title>` (the alt text) is
//! XML-escaped with characters XML forbids dropped, so no value can break the document.

use std::fmt::Write as _;

use resvg::{tiny_skia, usvg};
use ttf_parser::{Face, OutlineBuilder};

use super::layout::{self, Frame};
use super::{colour, PALETTE};

static FONT: &[u8] = include_bytes!("font/DejaVuSans-subset.ttf");

/// The picture's width in CSS pixels (an e-mail body's width).
pub const WIDTH: f64 = 600.0;
/// Pixels per CSS pixel in the PNG: sharp on high-density screens, shown at [`WIDTH`].
pub const DENSITY: f32 = 2.0;
/// A legend label is cut to this many characters.
pub const MAX_LABEL_CHARS: usize = 24;
const PLOT_HEIGHT: f64 = 160.0;
const TOP: f64 = 12.0;
const TICKS: f64 = 22.0;
const LEGEND_ROW: f64 = 18.0;
const FONT_SIZE: f64 = 11.0;
const TEXT: &str = "#555555";
const GRID: &str = "#e6e6e6";
const BASELINE: &str = "#888888";

/// What to draw: counts per bucket and series (as [`super::Counts::per_bucket`]), each bucket's
/// label, each series' label, and a title (the alt text) for the SVG.
pub struct Drawing<'a> {
    pub per_bucket: &'a [Vec<usize>],
    pub bucket_labels: &'a [String],
    /// A label under every this many buckets, counted back from the newest.
    pub tick_every: usize,
    pub series: &'a [String],
    pub title: &'a str,
}

/// A rendered picture: PNG bytes, and the size to show it at in CSS pixels.
#[derive(Debug, Clone)]
pub struct Png {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the embedded font does not parse")]
    Font,
    #[error("the SVG does not parse: {0}")]
    Svg(String),
    #[error("no pixmap of {0}×{1}")]
    Pixmap(u32, u32),
    #[error("PNG encoding: {0}")]
    Png(String),
    #[error("the renderer panicked")]
    Panicked,
}

/// Text as XML character data or an attribute value: escaped, and without the characters XML
/// 1.0 does not allow even escaped (C0 controls but tab, LF, CR; U+FFFE, U+FFFF).
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A legend label as the picture draws it: one line, at most [`MAX_LABEL_CHARS`] characters.
pub fn clip_label(s: &str) -> String {
    crate::text::truncate_chars(&crate::text::one_line(s), MAX_LABEL_CHARS)
}

/// Glyph outlines as SVG path data, scaled from font units and placed at the pen.
struct Outline {
    d: String,
    x: f64,
    y: f64,
    scale: f64,
}

impl Outline {
    fn point(&mut self, x: f32, y: f32) {
        let _ = write!(self.d, "{:.2} {:.2}", self.x + x as f64 * self.scale, self.y - y as f64 * self.scale);
    }
}

impl OutlineBuilder for Outline {
    fn move_to(&mut self, x: f32, y: f32) {
        self.d.push('M');
        self.point(x, y);
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.d.push('L');
        self.point(x, y);
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        self.d.push('Q');
        self.point(x1, y1);
        self.d.push(' ');
        self.point(x, y);
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        self.d.push('C');
        self.point(x1, y1);
        self.d.push(' ');
        self.point(x2, y2);
        self.d.push(' ');
        self.point(x, y);
    }
    fn close(&mut self) {
        self.d.push('Z');
    }
}

struct Type<'f> {
    face: Face<'f>,
    scale: f64,
}

impl Type<'_> {
    fn load() -> Result<Type<'static>, ChartError> {
        let face = Face::parse(FONT, 0).map_err(|_| ChartError::Font)?;
        let scale = FONT_SIZE / face.units_per_em() as f64;
        Ok(Type { face, scale })
    }

    /// Each character's glyph, `?` for one the font lacks.
    fn glyphs(&self, s: &str) -> Vec<ttf_parser::GlyphId> {
        let fallback = self.face.glyph_index('?').unwrap_or_default();
        // The subset has the en dash, not the em dash our labels use for "nothing given".
        s.chars().map(|c| if c == '—' { '–' } else { c }).map(|c| self.face.glyph_index(c).unwrap_or(fallback)).collect()
    }

    fn width(&self, s: &str) -> f64 {
        self.glyphs(s).into_iter().map(|g| self.face.glyph_hor_advance(g).unwrap_or(0) as f64 * self.scale).sum()
    }

    /// `s` as one filled path, its baseline at `y`, anchored at `x` (`start`, `middle`, `end`).
    fn path(&self, s: &str, x: f64, y: f64, anchor: &str) -> String {
        let width = self.width(s);
        let x0 = match anchor {
            "middle" => x - width / 2.0,
            "end" => x - width,
            _ => x,
        };
        let mut outline = Outline { d: String::new(), x: x0, y, scale: self.scale };
        for g in self.glyphs(s) {
            self.face.outline_glyph(g, &mut outline);
            outline.x += self.face.glyph_hor_advance(g).unwrap_or(0) as f64 * self.scale;
        }
        if outline.d.is_empty() {
            return String::new();
        }
        format!("<path fill=\"{TEXT}\" d=\"{}\"/>\n", outline.d)
    }
}

/// The legend's entries: every series when they fit the palette, else the first ones and
/// "Other" (the series past them share its colour in the bars too).
fn legend_labels(series: &[String]) -> Vec<String> {
    if series.len() <= PALETTE.len() {
        return series.iter().map(|s| clip_label(s)).collect();
    }
    let shown = PALETTE.len() - 1;
    let mut labels: Vec<String> = series[..shown].iter().map(|s| clip_label(s)).collect();
    labels.push(format!("Other ({} more)", series.len() - shown));
    labels
}

/// The self-contained SVG and its height in CSS pixels.
pub fn svg(d: &Drawing) -> Result<(String, f64), ChartError> {
    let t = Type::load()?;
    // The legend first: its rows decide the height.
    let (swatch, gap) = (10.0, 16.0);
    let mut entries = Vec::new();
    let (mut x, mut row) = (0.0_f64, 0usize);
    for (i, label) in legend_labels(d.series).into_iter().enumerate() {
        let w = swatch + 5.0 + t.width(&label);
        if x > 0.0 && x + w > WIDTH - 40.0 {
            (x, row) = (0.0, row + 1);
        }
        entries.push((i, label, x, row));
        x += w + gap;
    }
    let rows = if entries.is_empty() { 0 } else { row + 1 };
    let frame = Frame { width: WIDTH, height: 0.0, left: 32.0, right: 8.0, top: TOP, bottom: TICKS + rows as f64 * LEGEND_ROW + 6.0 };
    let frame = Frame { height: TOP + PLOT_HEIGHT + frame.bottom, ..frame };
    // The grid's labels sit left of the plot, right-aligned: a busy month's "12000" needs more
    // room than the usual two digits, so the plot moves right to make it.
    let g = layout::layout(d.per_bucket, &frame, d.tick_every);
    let widest = g.grid.iter().map(|l| t.width(&l.value.to_string())).fold(0.0_f64, f64::max);
    let frame = Frame { left: frame.left.max(widest + 10.0), ..frame };
    let g = layout::layout(d.per_bucket, &frame, d.tick_every);

    let (w, h) = (frame.width, frame.height);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">\n<title>{}</title>\n<rect width=\"{w}\" height=\"{h}\" fill=\"#ffffff\"/>\n",
        xml_escape(d.title)
    );
    for l in &g.grid {
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{GRID}\" stroke-width=\"1\"/>",
            g.plot_left, g.plot_right, l.y, l.y
        );
        s.push_str(&t.path(&l.value.to_string(), g.plot_left - 6.0, l.y + 4.0, "end"));
    }
    for seg in &g.segments {
        let _ = writeln!(
            s,
            "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{:.2}\" fill=\"{}\"/>",
            seg.x,
            seg.y,
            seg.width,
            seg.height,
            colour(seg.series)
        );
    }
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"{BASELINE}\" stroke-width=\"1\"/>",
        g.plot_left, g.plot_right, g.baseline, g.baseline
    );
    for tick in &g.ticks {
        let label = d.bucket_labels.get(tick.bucket).map(String::as_str).unwrap_or_default();
        s.push_str(&t.path(label, tick.x, g.baseline + 15.0, tick.anchor));
    }
    let legend_top = g.baseline + TICKS + 4.0;
    for (i, label, x, row) in &entries {
        let (x, y) = (g.plot_left + x, legend_top + *row as f64 * LEGEND_ROW);
        let _ = writeln!(s, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{swatch}\" height=\"{swatch}\" fill=\"{}\"/>", colour(*i));
        s.push_str(&t.path(label, x + swatch + 5.0, y + swatch - 0.5, "start"));
    }
    s.push_str("</svg>\n");
    Ok((s, h))
}

/// The drawing as a PNG at [`DENSITY`]. Any failure, a panic in the renderer included, is an
/// error: the caller sends its message without the picture.
pub fn render(d: &Drawing) -> Result<Png, ChartError> {
    let (svg, height) = svg(d)?;
    std::panic::catch_unwind(|| rasterise(&svg, height)).unwrap_or(Err(ChartError::Panicked))
}

fn rasterise(svg: &str, height: f64) -> Result<Png, ChartError> {
    let tree = usvg::Tree::from_str(svg, &usvg::Options::default()).map_err(|e| ChartError::Svg(e.to_string()))?;
    let (w, h) = ((WIDTH as f32 * DENSITY).round() as u32, (height as f32 * DENSITY).round() as u32);
    let mut pixmap = tiny_skia::Pixmap::new(w, h).ok_or(ChartError::Pixmap(w, h))?;
    resvg::render(&tree, tiny_skia::Transform::from_scale(DENSITY, DENSITY), &mut pixmap.as_mut());
    let bytes = pixmap.encode_png().map_err(|e| ChartError::Png(e.to_string()))?;
    Ok(Png { bytes, width: WIDTH as u32, height: height.round() as u32 })
}

/// The width and height a PNG's header declares, if `bytes` starts as a PNG does (the
/// signature, then the IHDR chunk).
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || &bytes[..8] != SIGNATURE || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    Some((be(&bytes[16..20]), be(&bytes[20..24])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{:02}:00", i % 24)).collect()
    }

    fn drawing<'a>(per_bucket: &'a [Vec<usize>], bucket_labels: &'a [String], series: &'a [String], title: &'a str) -> Drawing<'a> {
        Drawing { per_bucket, bucket_labels, tick_every: 3, series, title }
    }

    #[test]
    fn the_png_decodes_to_twice_the_picture_size() {
        let counts: Vec<Vec<usize>> = (0..24).map(|i| vec![i % 3, i % 2]).collect();
        let series = ["Contact me".to_string(), "Get it now".to_string()];
        let png = render(&drawing(&counts, &labels(24), &series, "Leads per hour")).unwrap();
        assert_eq!(png.width, 600);
        assert_eq!(png_size(&png.bytes), Some((1200, png.height * 2)), "2x density, as the header says");
        assert!(png.height > 150 && png.height < 300, "{}", png.height);
        // Drawn, not blank: a flat white 1200×h picture compresses to well under a kilobyte.
        assert!(png.bytes.len() > 2000, "{} bytes", png.bytes.len());
    }

    #[test]
    fn hostile_labels_cannot_break_the_svg() {
        let hostile = "</title><script>alert(1)</script>\u{1}\u{FFFE}\"&'<!--".to_string();
        let series = [hostile.clone(), "Ω→ 東京 \u{202E}".to_string()];
        let title = format!("Leads per hour: 2 {hostile}");
        let (counts, ticks) = (vec![vec![1, 1]], labels(1));
        let d = drawing(&counts, &ticks, &series, &title);
        let (svg, _) = svg(&d).unwrap();
        assert!(!svg.contains("<script") && !svg.contains("</title><") && !svg.contains("<!--"), "{svg}");
        assert!(svg.contains("&lt;/title&gt;&lt;script&gt;") && svg.contains("&quot;&amp;&apos;&lt;!--"), "{svg}");
        assert!(!svg.contains('\u{1}') && !svg.contains('\u{FFFE}'));
        assert_eq!(svg.matches("<title>").count(), 1);
        // The labels are outlines, never text: nothing of them but the escaped title is in the SVG.
        assert!(!svg.contains("alert(1)</") && !svg.contains("東京"));
        let png = render(&d).unwrap();
        assert!(png_size(&png.bytes).is_some());
    }

    #[test]
    fn labels_are_clipped_and_many_series_end_in_other() {
        assert_eq!(clip_label(&"x".repeat(100)).chars().count(), MAX_LABEL_CHARS);
        assert_eq!(clip_label("a\r\nb"), "a  b");
        let series: Vec<String> = (0..9).map(|i| format!("Action {i}")).collect();
        let l = legend_labels(&series);
        assert_eq!(l.len(), PALETTE.len());
        assert_eq!(l.last().map(String::as_str), Some("Other (4 more)"));
    }

    #[test]
    fn the_font_has_every_glyph_the_labels_use() {
        let t = Type::load().unwrap();
        let question = t.face.glyph_index('?').unwrap();
        for c in ('0'..='9').chain('A'..='Z').chain('a'..='z').chain([':', ' ', '(', ')', '×', '–', '…']) {
            assert!(t.face.glyph_index(c).is_some_and(|g| g != question || c == '?'), "{c}");
        }
        assert!(t.width("Nov 21") > 20.0 && t.width("Nov 21") < 60.0);
    }

    #[test]
    fn large_counts_keep_their_grid_labels_on_the_picture() {
        let (counts, ticks, series) = (vec![vec![12_345_678]], labels(1), ["Contact me".to_string()]);
        let (svg, _) = svg(&drawing(&counts, &ticks, &series, "t")).unwrap();
        // Every outline starts inside the picture: no coordinate left of it.
        assert!(!svg.contains("d=\"M-"), "{svg}");
        let t = Type::load().unwrap();
        assert_eq!(t.glyphs("—"), t.glyphs("–"), "the em dash is drawn, as an en dash, not as ?");
    }

    #[test]
    fn not_a_png() {
        assert_eq!(png_size(b"GIF89a"), None);
        assert_eq!(png_size(&[0u8; 40]), None);
    }
}
