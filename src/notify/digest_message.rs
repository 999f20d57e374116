//! What the digest e-mail says: a period's leads summarised (counts by offer and by action, and
//! the inbox's chart of them as an inline PNG), then listed. Customer text reaches the bodies
//! only, each value through `one_line` (plain text) or the template engine's escaping (HTML,
//! `templates/digest_email.html`); the subject is made
//! of counts and times alone, so no customer text can reach a header. The picture carries no
//! customer text but action labels (see `chart::png`); when it cannot be drawn the digest goes
//! without it.

use std::collections::BTreeMap;

use askama::Template;
use chrono::{DateTime, Timelike, Utc};

use crate::chart::buckets::TimeBuckets;
use crate::chart::png::{self, Drawing};
use crate::lead::{action_label, Lead};
use crate::text::one_line;
use crate::text::truncate_chars;

/// A period (and so the partitions one digest reads) is cut to this many days: a weekly or
/// monthly digest fits, a yearly one covers its last month.
pub const MAX_PERIOD_DAYS: u64 = 31;

/// Leads listed at most; the counts still cover all of them.
pub const MAX_LISTED: usize = 1000;
/// Characters of one customer value shown in the list: a name, not an essay.
const MAX_CELL_CHARS: usize = 120;

/// The period a digest covers and how it came to be that long.
#[derive(Debug, Clone, PartialEq)]
pub struct Period {
    /// Exclusive.
    pub start: DateTime<Utc>,
    /// Inclusive: the schedule tick that ended the period.
    pub end: DateTime<Utc>,
    /// Schedule ticks before `end` since `start` that got no digest of their own (LeadNotify
    /// was not running then): this digest covers their leads too.
    pub missed_ticks: u32,
    /// The period was cut to the last [`MAX_PERIOD_DAYS`] days.
    pub capped: bool,
}

/// One listed lead, already reduced to what the digest shows.
#[derive(Debug, Clone, PartialEq)]
pub struct DigestLine {
    pub received: Option<DateTime<Utc>>,
    /// When it reached the table (discovery's `arrival`), which placed it in the period: the
    /// chart's bucket. `received` stands in when unknown.
    pub arrived: Option<DateTime<Utc>>,
    pub company: String,
    pub name: String,
    pub action: String,
    pub offer: String,
}

impl DigestLine {
    pub fn from_lead(lead: &Lead) -> Self {
        let cell = |v: Option<String>| {
            v.map(|v| truncate_chars(&one_line(&v), MAX_CELL_CHARS)).filter(|v| !v.trim().is_empty()).unwrap_or_else(|| "—".into())
        };
        DigestLine {
            received: lead.created,
            arrived: lead.created,
            company: cell(lead.contact.company.clone()),
            name: cell(lead.contact.full_name()),
            action: cell(Some(lead.action_code.as_deref().map(action_label).unwrap_or("(no action given)").to_string())),
            offer: cell(Some(lead.offer().unwrap_or("unknown offer").to_string())),
        }
    }
}

pub struct DigestMessage {
    pub subject: String,
    pub plain: String,
    pub html: String,
    /// The chart the HTML shows as `<img src="cid:…">`; `None` for an empty period, or when it
    /// could not be drawn (then the HTML has no `<img>`).
    pub chart: Option<InlineChart>,
}

/// A PNG for the HTML part, sent beside it in a `multipart/related` part.
pub struct InlineChart {
    /// Without angle brackets, as in `cid:` URLs.
    pub content_id: String,
    pub png: Vec<u8>,
}

/// How the HTML shows the chart: `<img src="cid:…">` with its size and alt text.
struct ChartImage {
    content_id: String,
    width: u32,
    height: u32,
    alt: String,
}

/// The period's leads per hour (a period of up to two days) or per day, stacked by action:
/// the picture and how the HTML shows it. `None` when there is nothing to draw or drawing
/// failed (logged without lead data).
fn chart(period: &Period, lines: &[DigestLine]) -> Option<(InlineChart, ChartImage)> {
    // Never lose a digest over its picture: whatever goes wrong in counting or drawing, the
    // digest goes without it.
    std::panic::catch_unwind(|| draw_chart(period, lines)).unwrap_or_else(|_| {
        tracing::warn!("digest: drawing the chart failed; the digest goes without it");
        None
    })
}

fn draw_chart(period: &Period, lines: &[DigestLine]) -> Option<(InlineChart, ChartImage)> {
    if lines.is_empty() {
        return None;
    }
    let buckets = TimeBuckets::for_period(period.start, period.end);
    // Every line was found by its arrival in the period; a line with no time at all (none
    // comes from discovery) is drawn in the last bucket so the bars still add up.
    let items = lines.iter().map(|l| (buckets.bucket_of(l.arrived.or(l.received).unwrap_or(period.end)), l.action.clone()));
    let counts = crate::chart::count(buckets.starts.clone(), items);
    let unit = buckets.unit.name();
    let by_action: Vec<String> = counts.series.iter().zip(counts.series_totals()).map(|(a, n)| format!("{n} {a}")).collect();
    let totals = counts.bucket_totals();
    let busiest = totals.iter().enumerate().max_by_key(|(i, n)| (**n, std::cmp::Reverse(*i))).map(|(i, n)| (buckets.label(i), *n));
    let mut alt = format!(
        "Leads per {unit}, {} – {} UTC, stacked by action: {} in total ({})",
        short(period.start),
        short(period.end),
        counts.total(),
        by_action.join(", ")
    );
    if let Some((label, n)) = busiest.filter(|_| counts.total() > 1) {
        alt.push_str(&format!("; the busiest {unit} was {label} with {n}"));
    }
    alt.push('.');
    let labels: Vec<String> = (0..buckets.starts.len()).map(|i| buckets.label(i)).collect();
    let drawing = Drawing {
        per_bucket: &counts.per_bucket,
        bucket_labels: &labels,
        tick_every: buckets.tick_every(),
        series: &counts.series,
        title: &alt,
    };
    match png::render(&drawing) {
        Ok(picture) => {
            let content_id = format!("chart-{}@marketplace-leads", period.end.format("%Y%m%dT%H%M%SZ"));
            let image = ChartImage { content_id: content_id.clone(), width: picture.width, height: picture.height, alt };
            Some((InlineChart { content_id, png: picture.bytes }, image))
        }
        Err(error) => {
            tracing::warn!(%error, "digest: the chart could not be drawn; the digest goes without it");
            None
        }
    }
}

fn short(t: DateTime<Utc>) -> String {
    t.format("%-d %b %H:%M").to_string()
}

fn long(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A period's bound: to the second when the schedule ticks off the minute.
fn bound(t: DateTime<Utc>) -> String {
    if t.second() == 0 {
        long(t)
    } else {
        t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }
}

/// `(count, label)`, most first, then by label: the order a reader scans.
fn counts(lines: &[DigestLine], key: impl Fn(&DigestLine) -> &str) -> Vec<(usize, String)> {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for l in lines {
        *by.entry(key(l).to_string()).or_default() += 1;
    }
    let mut v: Vec<(usize, String)> = by.into_iter().map(|(k, n)| (n, k)).collect();
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    v
}

impl DigestMessage {
    /// `lines` in the order to list them (oldest first); test leads already left out.
    pub fn new(period: &Period, lines: &[DigestLine]) -> Self {
        let n = lines.len();
        let how_many = match n {
            0 => "no new leads".to_string(),
            1 => "1 new lead".to_string(),
            n => format!("{n} new leads"),
        };
        // Short: counts and times only, well inside RFC 5322's 78-character line advice.
        let subject = format!("Marketplace leads digest: {how_many}, {} – {} UTC", short(period.start), short(period.end));
        let covers =
            format!("Covers {} – {} (received after the start, up to and including the end).", bound(period.start), bound(period.end));
        let mut notes = Vec::new();
        if period.missed_ticks > 0 {
            notes.push(format!(
                "LeadNotify was not running at {} earlier digest time(s), so this digest also covers the leads those digests would have listed.",
                period.missed_ticks
            ));
        }
        if period.capped {
            notes.push(format!(
                "Only the last {} days are covered; older leads: `handler leads list --since {}`.",
                MAX_PERIOD_DAYS,
                period.start.format("%Y-%m-%d")
            ));
        }
        let by_offer = counts(lines, |l| &l.offer);
        let by_action = counts(lines, |l| &l.action);
        let listed = &lines[..n.min(MAX_LISTED)];
        let received = |l: &DigestLine| l.received.map(long).unwrap_or_else(|| "—".into());

        let mut plain = format!("Marketplace leads digest\n{covers}\n");
        for note in &notes {
            plain.push_str(&format!("{note}\n"));
        }
        plain.push('\n');
        if n == 0 {
            plain.push_str("No new leads in this period (Microsoft's test leads are not counted).\n");
        } else {
            plain.push_str(&format!("{} (Microsoft's test leads are not counted).\n\nBy offer:\n", capitalise(&how_many)));
            for (count, offer) in &by_offer {
                plain.push_str(&format!("  {count:>5}  {offer}\n"));
            }
            plain.push_str("\nBy action:\n");
            for (count, action) in &by_action {
                plain.push_str(&format!("  {count:>5}  {action}\n"));
            }
            plain.push_str("\nLeads (received, company, name, action, offer):\n");
            for l in listed {
                plain.push_str(&format!("  {} | {} | {} | {} | {}\n", received(l), l.company, l.name, l.action, l.offer));
            }
            if n > listed.len() {
                plain.push_str(&format!("  … and {} more: `handler leads list`\n", n - listed.len()));
            }
        }

        let chart = chart(period, lines);
        let (chart, image) = chart.unzip();
        let email = DigestEmail {
            subject: &subject,
            covers: &covers,
            notes: &notes,
            how_many: capitalise(&how_many),
            image,
            by_offer: &by_offer,
            by_action: &by_action,
            listed: listed
                .iter()
                .map(|l| ListedLead { received: received(l), company: &l.company, name: &l.name, action: &l.action, offer: &l.offer })
                .collect(),
            more: n - listed.len(),
        };
        // Plain strings into a fixed template cannot fail to render; should it ever, the digest
        // still goes, as its plain-text part alone (the sender leaves an empty HTML part out).
        let html = email.render().unwrap_or_else(|e| {
            tracing::error!(error = %e, "the digest's HTML part could not be drawn");
            String::new()
        });
        DigestMessage { subject, plain, html, chart }
    }
}

/// The digest's HTML part (`templates/digest_email.html`; askama escapes every value).
#[derive(Template)]
#[template(path = "digest_email.html")]
struct DigestEmail<'a> {
    subject: &'a str,
    covers: &'a str,
    notes: &'a [String],
    how_many: String,
    image: Option<ChartImage>,
    by_offer: &'a [(usize, String)],
    by_action: &'a [(usize, String)],
    listed: Vec<ListedLead<'a>>,
    /// Leads counted but not listed (past [`MAX_LISTED`]).
    more: usize,
}

struct ListedLead<'a> {
    received: String,
    company: &'a str,
    name: &'a str,
    action: &'a str,
    offer: &'a str,
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn period() -> Period {
        Period { start: at("2026-11-21T08:00:00Z"), end: at("2026-11-22T08:00:00Z"), missed_ticks: 0, capped: false }
    }

    fn line(company: &str, action: &str, offer: &str) -> DigestLine {
        DigestLine {
            received: Some(at("2026-11-21T09:30:00Z")),
            arrived: Some(at("2026-11-21T09:30:05Z")),
            company: company.into(),
            name: "Jana Novák".into(),
            action: action.into(),
            offer: offer.into(),
        }
    }

    #[test]
    fn subject_is_short_and_counts() {
        let lines = [line("A", "Contact me", "X"), line("B", "Contact me", "Y"), line("C", "Get it now", "X")];
        let m = DigestMessage::new(&period(), &lines);
        assert_eq!(m.subject, "Marketplace leads digest: 3 new leads, 21 Nov 08:00 – 22 Nov 08:00 UTC");
        assert!(m.subject.chars().count() < 78);
        assert!(m.plain.contains("      2  X\n      1  Y\n"), "{}", m.plain);
        assert!(m.plain.contains("      2  Contact me\n      1  Get it now\n"), "{}", m.plain);
        assert_eq!(
            DigestMessage::new(&period(), &lines[..1]).subject,
            "Marketplace leads digest: 1 new lead, 21 Nov 08:00 – 22 Nov 08:00 UTC"
        );
    }

    #[test]
    fn an_empty_period_says_so() {
        let m = DigestMessage::new(&period(), &[]);
        assert!(m.subject.contains("no new leads"));
        assert!(m.plain.contains("No new leads") && m.html.contains("No new leads"));
        assert!(m.chart.is_none() && !m.html.contains("<img"), "nothing to draw");
    }

    #[test]
    fn the_html_shows_the_chart_per_hour_with_its_numbers_in_words() {
        let mut late = line("C", "Get it now", "X");
        late.arrived = Some(at("2026-11-22T08:00:00Z")); // the period's last instant
        let lines = [line("A", "Contact me", "X"), line("B", "Contact me", "Y"), late];
        let m = DigestMessage::new(&period(), &lines);
        let chart = m.chart.expect("a chart");
        assert_eq!(chart.content_id, "chart-20261122T080000Z@marketplace-leads");
        assert!(m.html.contains(&format!("<img src=\"cid:{}\" width=\"600\" height=\"", chart.content_id)), "{}", m.html);
        assert!(
            m.html.contains(
                "alt=\"Leads per hour, 21 Nov 08:00 – 22 Nov 08:00 UTC, stacked by action: 3 in total (2 Contact me, 1 Get it now); the busiest hour was 09:00 with 2.\""
            ),
            "the bars add up to the leads, the last one clamped into the period's last hour: {}",
            m.html
        );
        let (w, h) = png::png_size(&chart.png).expect("a PNG");
        assert_eq!(w, 1200);
        assert!(m.html.contains(&format!("height=\"{}\"", h / 2)));
        assert!(!m.plain.contains("cid:"), "the plain part keeps its counts, no picture");
    }

    #[test]
    fn a_week_is_drawn_per_day() {
        let week = Period { start: at("2026-11-15T08:00:00Z"), ..period() };
        let m = DigestMessage::new(&week, &[line("A", "Contact me", "X")]);
        assert!(
            m.html.contains("alt=\"Leads per day, 15 Nov 08:00 – 22 Nov 08:00 UTC, stacked by action: 1 in total (1 Contact me).\""),
            "{}",
            m.html
        );
    }

    #[test]
    fn a_hostile_action_label_is_escaped_in_the_alt_text_and_the_picture_still_draws() {
        let lines = [line("A", "\"><script>alert(1)</script>\u{1}", "X")];
        let m = DigestMessage::new(&period(), &lines);
        assert!(m.chart.is_some());
        assert!(!m.html.contains("<script") && m.html.contains("1 &#34;&#62;&#60;script&#62;"), "{}", m.html);
    }

    #[test]
    fn missed_ticks_are_told() {
        let m = DigestMessage::new(&Period { missed_ticks: 2, ..period() }, &[]);
        assert!(m.plain.contains("not running at 2 earlier digest time(s)"), "{}", m.plain);
    }

    #[test]
    fn hostile_text_is_escaped_and_kept_on_its_line() {
        let body = serde_json::json!({
            "UserDetails": {"FirstName": "<script>alert(1)</script>", "LastName": "X",
                            "Company": "Acme\r\nE-mail: attacker@evil.example\u{2028}Phone: 1"},
            "LeadSource": "SPZA-PLT|x.y", "OfferTitle": "<img src=x onerror=alert(1)>"
        });
        let lead = Lead::from_payload(body.to_string().as_bytes()).unwrap().0;
        let m = DigestMessage::new(&period(), &[DigestLine::from_lead(&lead)]);
        assert!(!m.html.contains("<script") && !m.html.contains("<img src=x") && m.html.contains("&#60;script&#62;"), "{}", m.html);
        assert_eq!(m.html.matches("<img").count(), 1, "the chart's alone: {}", m.html);
        assert!(!m.plain.lines().any(|l| l.starts_with("E-mail:") || l.starts_with("Phone:")), "{}", m.plain);
        assert!(!m.plain.contains('\u{2028}') && !m.plain.contains('\r'));
        assert!(!m.subject.contains("Acme"), "no customer text in the subject");
    }
}
