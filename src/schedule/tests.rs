//! NCRONTAB as the Functions host reads it: examples from Microsoft's docs, errors, and random
//! expressions checked against an independent model.

use super::*;

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn next(expr: &str, from: &str) -> Option<String> {
    Schedule::parse(expr).unwrap_or_else(|e| panic!("{e}")).next_after(at(from)).map(|t| t.to_rfc3339())
}

#[test]
fn the_latest_tick_at_or_before() {
    let daily = Schedule::parse("0 0 8 * * *").unwrap();
    assert_eq!(daily.last_at_or_before(at("2026-11-22T08:00:00Z")), Some(at("2026-11-22T08:00:00Z")));
    assert_eq!(daily.last_at_or_before(at("2026-11-22T07:59:59.900Z")), Some(at("2026-11-21T08:00:00Z")));
    assert_eq!(daily.last_at_or_before(at("2026-11-22T15:00:00Z")), Some(at("2026-11-22T08:00:00Z")));
    let every_second = Schedule::parse("* * * * * *").unwrap();
    assert_eq!(every_second.last_at_or_before(at("2026-11-22T15:00:07.5Z")), Some(at("2026-11-22T15:00:07Z")));
    let leap = Schedule::parse("0 0 0 29 2 *").unwrap();
    assert_eq!(leap.last_at_or_before(at("2027-03-01T00:00:00Z")), Some(at("2024-02-29T00:00:00Z")));
}

#[test]
fn every_minute_and_every_second() {
    let t = at("2026-11-22T10:00:30Z");
    let m = Schedule::parse("0 */1 * * * *").unwrap();
    assert_eq!(m.next_after(t).unwrap().to_rfc3339(), "2026-11-22T10:01:00+00:00");
    let s = Schedule::parse("* * * * * *").unwrap();
    assert_eq!(s.next_after(t).unwrap().to_rfc3339(), "2026-11-22T10:00:31+00:00");
    // Strictly after, also from inside a second.
    let inside = at("2026-11-22T10:00:30.250Z");
    assert_eq!(s.next_after(inside).unwrap().to_rfc3339(), "2026-11-22T10:00:31+00:00");
}

#[test]
fn days_of_week_count_from_sunday_zero_as_in_azure() {
    // Saturday 2026-11-21 10:00 UTC: a weekday schedule fires next on Monday the 23rd.
    let sat = "2026-11-21T10:00:00Z";
    assert_eq!(next("0 0 9 * * 1-5", sat).unwrap(), "2026-11-23T09:00:00+00:00");
    assert_eq!(next("0 0 9 * * 0", sat).unwrap(), "2026-11-22T09:00:00+00:00");
    assert_eq!(next("0 0 9 * * 0", sat).unwrap(), "2026-11-22T09:00:00+00:00");
    assert_eq!(next("0 0 9 * * 6", sat).unwrap(), "2026-11-28T09:00:00+00:00");
    assert_eq!(next("0 0 9 * * 0,6", sat).unwrap(), "2026-11-22T09:00:00+00:00");
    assert_eq!(next("0 0 9 * * Mon-Fri", sat).unwrap(), "2026-11-23T09:00:00+00:00");
    assert!(Schedule::parse("0 0 9 * * 8").is_err());
}

#[test]
fn five_fields_are_refused() {
    let e = Schedule::parse("*/5 * * * *").unwrap_err();
    assert!(e.contains("five fields") && e.contains("`*/5 * * * *`") && e.contains("`0 */5 * * * *`"), "{e}");
}

/// The examples of the Azure Functions timer-trigger docs (functions-bindings-timer.md,
/// "NCRONTAB expressions"), from Saturday 2026-11-21 10:07:30 UTC.
#[test]
fn documented_examples() {
    let from = "2026-11-21T10:07:30Z";
    let table = [
        // The docs' table of value types.
        ("0 5 * * * *", "2026-11-21T11:05:00+00:00"),
        ("0 * 5 * * *", "2026-11-22T05:00:00+00:00"),
        ("5-7 * * * * *", "2026-11-21T10:08:05+00:00"),
        ("5,8,10 * * * * *", "2026-11-21T10:08:05+00:00"),
        ("0 */5 * * * *", "2026-11-21T10:10:00+00:00"),
        // The docs' examples.
        ("0 0 * * * *", "2026-11-21T11:00:00+00:00"),
        ("0 0 */2 * * *", "2026-11-21T12:00:00+00:00"),
        ("0 0 9-17 * * *", "2026-11-21T11:00:00+00:00"),
        ("0 30 9 * * *", "2026-11-22T09:30:00+00:00"),
        ("0 30 9 * * 1-5", "2026-11-23T09:30:00+00:00"),
        ("0 30 9 * Jan Mon", "2027-01-04T09:30:00+00:00"),
        ("0 30 9 * January Monday", "2027-01-04T09:30:00+00:00"),
        ("0 30 9 * jan mon", "2027-01-04T09:30:00+00:00"),
        ("0 0 9 * * MON-FRI", "2026-11-23T09:00:00+00:00"),
        ("*/15 * * * * *", "2026-11-21T10:07:45+00:00"),
        // The timer extension's own sample.
        ("*/15 * * * * *", "2026-11-21T10:07:45+00:00"),
    ];
    for (expr, want) in table {
        assert_eq!(next(expr, from).as_deref(), Some(want), "{expr}");
    }
}

#[test]
fn steps_names_and_lists() {
    let from = "2026-11-21T10:07:30Z";
    let table = [
        ("0 0 9-17/4 * * *", "2026-11-21T13:00:00+00:00"),
        ("0 20/15 * * * *", "2026-11-21T10:20:00+00:00"),
        ("0 0 0 1 */3 *", "2027-01-01T00:00:00+00:00"),
        ("0 0 0 1 Feb-Apr,Dec *", "2026-12-01T00:00:00+00:00"),
        ("0 0 12 * * Sat/2", "2026-11-21T12:00:00+00:00"),
        ("0 0 0 31 * *", "2026-12-31T00:00:00+00:00"),
        ("0 0 0 1,15 * *", "2026-12-01T00:00:00+00:00"),
    ];
    for (expr, want) in table {
        assert_eq!(next(expr, from).as_deref(), Some(want), "{expr}");
    }
}

#[test]
fn both_day_fields_must_match_as_in_ncrontab() {
    // Friday the 13th, not every Friday and every 13th.
    assert_eq!(next("0 0 0 13 * Fri", "2026-11-21T00:00:00Z").unwrap(), "2027-08-13T00:00:00+00:00");
}

#[test]
fn leap_days_and_impossible_dates() {
    let from = "2026-11-21T10:07:30Z";
    assert_eq!(next("0 0 0 29 2 *", from).unwrap(), "2028-02-29T00:00:00+00:00");
    assert_eq!(next("0 0 0 29 2 *", "2028-02-29T00:00:00Z").unwrap(), "2032-02-29T00:00:00+00:00");
    assert_eq!(next("0 0 0 29 Feb Mon", from).unwrap(), "2044-02-29T00:00:00+00:00");
    assert_eq!(next("0 0 0 31 2 *", from), None);
    assert_eq!(next("0 0 0 30,31 Feb *", from), None);
    assert_eq!(next("0 0 0 31 4,6,9,11 *", from), None);
    // The end of chrono's calendar is not a panic.
    assert_eq!(Schedule::parse("* * * * * *").unwrap().next_after(DateTime::<Utc>::MAX_UTC), None);
}

#[test]
fn errors_name_the_field_and_quote_the_user() {
    let cases = [
        ("0 0 25 * * *", "hour `25` is out of range 0-23 in `0 0 25 * * *`"),
        ("60 * * * * *", "second `60` is out of range 0-59 in `60 * * * * *`"),
        ("0 0 0 0 * *", "day `0` is out of range 1-31 in `0 0 0 0 * *`"),
        ("0 0 0 * 13 *", "month `13` is out of range 1-12 in `0 0 0 * 13 *`"),
        ("0 0 9 * * 8", "day-of-week `8` is out of range 0-6 in `0 0 9 * * 8`"),
        ("0 0 9 * * 1-8", "day-of-week `8` is out of range 0-6 in `0 0 9 * * 1-8`"),
        ("0 0 9 * * 7", "day-of-week `7` is out of range 0-6 (Sunday is `0`: the Functions host refuses `7`) in `0 0 9 * * 7`"),
        ("0 0 9 * * 1-7", "day-of-week `7` is out of range 0-6 (Sunday is `0`: the Functions host refuses `7`) in `0 0 9 * * 1-7`"),
        ("0 0 17-9 * * *", "hour range `17-9` runs backwards; write the smaller end first in `0 0 17-9 * * *`"),
        ("0 */0 * * * *", "minute step `0` in `*/0` is not a whole number of at least 1 in `0 */0 * * * *`"),
        ("0 1,,2 * * * *", "minute `1,,2` has an empty list item in `0 1,,2 * * * *`"),
        ("0 0 9 * * Mnday", "day-of-week `Mnday` is neither a number 0-6 nor a name"),
        ("0 0 9 * Jnu *", "month `Jnu` is neither a number 1-12 nor a name"),
        ("0 0 Mon * * *", "hour `Mon` is not a number 0-23 in `0 0 Mon * * *`"),
        ("0 0 9 ? * *", "day `?` is not a number 1-31"),
        ("0 0 9 L * *", "day `L` is not a number 1-31"),
        ("0 0 9-* * * *", "hour `*` is not a number 0-23"),
        ("0 0 99999999999 * * *", "hour `99999999999` is out of range 0-23"),
        ("0 0 0 1 * * *", "has 7 fields"),
        ("", "is empty"),
    ];
    for (expr, want) in cases {
        let e = Schedule::parse(expr).unwrap_err();
        assert!(e.contains(want), "{expr}: {e}");
    }
}

#[test]
fn display_and_from_str_keep_the_users_text() {
    let s: Schedule = "0 30 9 * Jan Mon".parse().unwrap();
    assert_eq!(s.to_string(), "0 30 9 * Jan Mon");
}

/// A small xorshift generator: a bounded property test without another crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % n as u64) as u32
    }
    fn range(&mut self, lo: u32, hi: u32) -> u32 {
        lo + self.below(hi - lo + 1)
    }
}

#[test]
fn random_text_never_panics() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet: Vec<char> = "0123456789*/-,  ?LW#JanMONsunDEC\u{e9}".chars().collect();
    let t = at("2026-11-21T10:07:30Z");
    for _ in 0..20_000 {
        let len = rng.below(24);
        let text: String = (0..len).map(|_| alphabet[rng.below(alphabet.len() as u32) as usize]).collect();
        if let Ok(s) = Schedule::parse(&text) {
            if let Some(n) = s.next_after(t) {
                assert!(n > t, "{text}");
            }
        }
    }
}

/// Writes a random field of `FIELDS[i]` and, independently of the parser, the values it
/// allows.
fn random_field(rng: &mut Rng, i: usize) -> (String, Vec<bool>) {
    let f = &FIELDS[i];
    let top = f.max;
    let mut allowed = vec![false; top as usize + 1];
    let word = |rng: &mut Rng, v: u32| -> String {
        let names = f.names;
        if names.is_empty() || rng.below(2) == 0 {
            return v.to_string();
        }
        let full = names[(v - f.min) as usize];
        let name = if rng.below(2) == 0 { &full[..3] } else { full };
        if rng.below(2) == 0 {
            name.to_uppercase()
        } else {
            name.to_lowercase()
        }
    };
    let items = if rng.below(4) == 0 { rng.range(2, 3) } else { 1 };
    let mut parts = Vec::new();
    for _ in 0..items {
        let (text, lo, hi, step) = match rng.below(6) {
            0 if items == 1 => ("*".to_string(), f.min, f.max, 1),
            0 | 1 => {
                let v = rng.range(f.min, top);
                (word(rng, v), v, v, 1)
            }
            2 => {
                let (a, b) = (rng.range(f.min, top), rng.range(f.min, top));
                let (a, b) = (a.min(b), a.max(b));
                (format!("{}-{}", word(rng, a), word(rng, b)), a, b, 1)
            }
            3 => {
                let n = rng.range(1, f.max - f.min + 1);
                (format!("*/{n}"), f.min, f.max, n)
            }
            4 => {
                let (a, b) = (rng.range(f.min, top), rng.range(f.min, top));
                let (a, b) = (a.min(b), a.max(b));
                let n = rng.range(1, 10);
                (format!("{}-{}/{n}", word(rng, a), word(rng, b)), a, b, n)
            }
            _ => {
                let a = rng.range(f.min, f.max);
                let n = rng.range(1, 10);
                (format!("{}/{n}", word(rng, a)), a, f.max, n)
            }
        };
        let mut v = lo;
        while v <= hi {
            allowed[v as usize] = true;
            v += step;
        }
        parts.push(text);
    }
    (parts.join(","), allowed)
}

#[test]
fn random_expressions_tick_when_they_say() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..2_000 {
        let (texts, sets): (Vec<String>, Vec<Vec<bool>>) = (0..6).map(|i| random_field(&mut rng, i)).unzip();
        let expr = texts.join(" ");
        let s = Schedule::parse(&expr).unwrap_or_else(|e| panic!("{e}"));
        let allows = |i: usize, v: u32| sets[i][v as usize];
        let matches = |d: NaiveDateTime| {
            allows(0, d.second())
                && allows(1, d.minute())
                && allows(2, d.hour())
                && allows(3, d.day())
                && allows(4, d.month())
                && allows(5, d.weekday().num_days_from_sunday())
        };
        // A random instant from 2000 to 2100 whose hour, minute and second are often
        // allowed ones, so that carries between the fields get exercised.
        let secs = rng.range(946_684_800, 4_102_444_800) / 86_400 * 86_400;
        let mut pick = |i: usize, n: u32| {
            let allowed: Vec<u32> = (0..n).filter(|&v| sets[i][v as usize]).collect();
            if rng.below(3) > 0 {
                allowed[rng.below(allowed.len() as u32) as usize]
            } else {
                rng.below(n)
            }
        };
        let time = pick(2, 24) * 3600 + pick(1, 60) * 60 + pick(0, 60);
        let nanos = if rng.below(2) == 0 { 0 } else { rng.below(1_000_000_000) };
        let t = DateTime::from_timestamp((secs + time) as i64, nanos).unwrap();
        let Some(n) = s.next_after(t) else {
            // Only when no allowed month has an allowed day (29 for February).
            let possible = (1..=12u32)
                .any(|m| allows(4, m) && (1..=[31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1]).any(|d| allows(3, d)));
            assert!(!possible, "{expr}: no tick after {t}");
            continue;
        };
        assert!(n > t, "{expr}: {n} is not after {t}");
        assert!(matches(n.naive_utc()), "{expr}: {n} does not match");
        // Nothing in between: brute force, day by day, then hour, minute and second.
        let first_in_day = |day: NaiveDate, from: u32| {
            let day_ok = allows(3, day.day()) && allows(4, day.month()) && allows(5, day.weekday().num_days_from_sunday());
            if !day_ok {
                return None;
            }
            (from..86_400u32).find(|&sec| allows(2, sec / 3600) && allows(1, sec / 60 % 60) && allows(0, sec % 60))
        };
        let first = t.naive_utc().with_nanosecond(0).unwrap() + Duration::seconds(1);
        let mut day = first.date();
        loop {
            let from = if day == first.date() { first.time().num_seconds_from_midnight() } else { 0 };
            let found = first_in_day(day, from);
            if day == n.date_naive() {
                assert_eq!(found, Some(n.time().num_seconds_from_midnight()), "{expr}: from {t} got {n}");
                break;
            }
            assert_eq!(found, None, "{expr}: {day} has a tick before {n} (from {t})");
            day = day.succ_opt().unwrap();
        }
    }
}
