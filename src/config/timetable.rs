//! `[upload] max_rate` as a bandwidth timetable in rclone's `--bwlimit` syntax.
//!
//! A value without a comma is one flat rate, in ingestd's own units (`"10 MiB"`, `"10 MiB/s"`,
//! `0`; `"off"` = unlimited). A value with a comma is a timetable: entries separated by spaces
//! (or `;`), each `HH:MM,RATE` or `DAY-HH:MM,RATE`:
//!
//! - `DAY` is `Mon`…`Sun` or the full English name, any case. An entry without a day applies to
//!   every day of the week (rclone expands it to seven entries; so does this parser).
//! - `RATE` uses rclone's units: a bare number is KiB/s, suffixes `B`, `K`, `M`, `G`, `T` are
//!   powers of 1024 (`Ki`/`KiB` forms too), decimals allowed (`1.5M`); `off` or `0` = unlimited.
//!   rclone's `UP:DOWN` pair is accepted and its upload side used (ingestd only uploads).
//! - The rate in force is the one of the latest entry at or before now, going round the week:
//!   before the week's first entry, the week's last entry still holds (rclone's documented
//!   meaning; rclone's code picks the last *listed* entry there, which differs only for tables
//!   not written in week order). Two entries at the same time: the later one listed wins.
//!
//! Times are local wall-clock minutes of the week, `0` = Sunday 00:00 (as rclone numbers days).
//! Pure: the caller supplies the local time (`upload::localtime`) and attaches positions.

use std::fmt;

/// Minutes in a week.
pub const WEEK_MINUTES: u32 = 7 * 24 * 60;

/// One entry: from `minute` of the week (0 = Sunday 00:00) on, `rate` bytes/s (0 = unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub minute: u32,
    pub rate: u64,
}

/// A flat rate or a weekly timetable; always at least one slot, sorted by minute, unique minutes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTable {
    slots: Vec<Slot>,
    /// The timetable as written (None for a flat rate).
    text: Option<String>,
}

/// The rate in force at a moment and what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InForce {
    /// Bytes per second; 0 = unlimited.
    pub rate: u64,
    /// Minutes from now (rounded down to the current minute's start) to the next different
    /// rate, and that rate; None when the rate never changes.
    pub next: Option<(u32, u64)>,
}

/// A timetable that does not parse: the byte offset in the value and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableError {
    pub offset: usize,
    pub message: String,
}

impl RateTable {
    /// One rate all week; 0 = unlimited.
    pub fn flat(rate: u64) -> RateTable {
        RateTable {
            slots: vec![Slot { minute: 0, rate }],
            text: None,
        }
    }

    /// Whether `text` is written as a timetable (has a comma) rather than one rate.
    pub fn is_timetable_text(text: &str) -> bool {
        text.contains(',')
    }

    /// Whether the rate never changes.
    pub fn is_flat(&self) -> bool {
        self.slots.windows(2).all(|w| w[0].rate == w[1].rate)
    }

    /// The timetable as written, None for a flat rate.
    pub fn text(&self) -> Option<&str> {
        self.text.as_deref()
    }

    /// The slots, sorted by minute of the week.
    pub fn slots(&self) -> &[Slot] {
        &self.slots
    }

    /// Parses a timetable (see the module doc). `min_rate` is the smallest limited rate accepted.
    pub fn parse(text: &str, min_rate: u64) -> Result<RateTable, TableError> {
        let mut slots: Vec<Slot> = Vec::new();
        let mut any = false;
        for (offset, token) in tokens(text) {
            any = true;
            let err = |at: usize, message: String| TableError {
                offset: offset + at,
                message,
            };
            let Some((when, rate_text)) = token.split_once(',') else {
                return Err(err(
                    0,
                    format!(
                        "`{token}` is not an entry; write TIME,RATE such as `08:00,2M` or `Mon-08:00,512k`"
                    ),
                ));
            };
            let rate_at = when.len() + 1;
            if rate_text.contains(',') {
                return Err(err(
                    0,
                    format!(
                        "`{token}` has two commas; separate entries with spaces, such as `08:00,2M 18:00,off`"
                    ),
                ));
            }
            let (day, hhmm, hhmm_at) = match when.split_once('-') {
                Some((day, hhmm)) => {
                    let Some(d) = weekday(day) else {
                        return Err(err(
                            0,
                            format!(
                                "`{day}` is not a day of the week; write Mon, Tue, Wed, Thu, Fri, Sat or Sun"
                            ),
                        ));
                    };
                    (Some(d), hhmm, day.len() + 1)
                }
                None => (None, when, 0),
            };
            let Some(minute) = hhmm_minutes(hhmm) else {
                return Err(err(
                    hhmm_at,
                    format!("`{hhmm}` is not a time; write HH:MM from 00:00 to 23:59"),
                ));
            };
            let rate = parse_rclone_rate(rate_text).map_err(|m| err(rate_at, m))?;
            if rate != 0 && rate < min_rate {
                return Err(err(
                    rate_at,
                    format!(
                        "`{rate_text}` is below {min_rate} bytes per second; write `off` for unlimited or at least `1k`"
                    ),
                ));
            }
            match day {
                Some(d) => slots.push(Slot {
                    minute: d * 24 * 60 + minute,
                    rate,
                }),
                None => slots.extend((0..7).map(|d| Slot {
                    minute: d * 24 * 60 + minute,
                    rate,
                })),
            }
        }
        if !any {
            return Err(TableError {
                offset: 0,
                message: "the timetable is empty".into(),
            });
        }
        // Stable sort, then the last one listed wins at equal minutes (as in rclone).
        slots.sort_by_key(|s| s.minute);
        let mut unique: Vec<Slot> = Vec::with_capacity(slots.len());
        for s in slots {
            match unique.last_mut() {
                Some(last) if last.minute == s.minute => *last = s,
                _ => unique.push(s),
            }
        }
        Ok(RateTable {
            slots: unique,
            text: Some(text.trim().to_owned()),
        })
    }

    /// The rate in force at `minute` of the week (0 = Sunday 00:00) and the next change.
    pub fn at(&self, minute: u32) -> InForce {
        let minute = minute % WEEK_MINUTES;
        let index = match self.slots.iter().rposition(|s| s.minute <= minute) {
            Some(i) => i,
            None => self.slots.len() - 1,
        };
        let rate = self.slots[index].rate;
        let n = self.slots.len();
        let next = (1..=n).find_map(|k| {
            let s = self.slots[(index + k) % n];
            (s.rate != rate).then(|| {
                let ahead = (s.minute + WEEK_MINUTES - minute) % WEEK_MINUTES;
                (if ahead == 0 { WEEK_MINUTES } else { ahead }, s.rate)
            })
        });
        InForce { rate, next }
    }
}

impl PartialEq<u64> for RateTable {
    /// A flat table equals its rate (`config.upload.max_rate == 0`).
    fn eq(&self, rate: &u64) -> bool {
        self.is_flat() && self.slots[0].rate == *rate
    }
}

impl fmt::Display for RateTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.text {
            Some(t) => f.write_str(t),
            None => f.write_str(&format_rate(self.slots[0].rate)),
        }
    }
}

/// `10 MiB/s`, or `unlimited` for 0.
pub fn format_rate(rate: u64) -> String {
    if rate == 0 {
        "unlimited".to_owned()
    } else {
        format!("{}/s", super::units::format_size(rate))
    }
}

/// Entries and their byte offsets in `text`, split on whitespace and `;`.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split(|c: char| c.is_whitespace() || c == ';')
        .filter(|t| !t.is_empty())
        .map(move |t| (t.as_ptr() as usize - text.as_ptr() as usize, t))
}

/// 0 = Sunday … 6 = Saturday.
fn weekday(name: &str) -> Option<u32> {
    const DAYS: [(&str, &str); 7] = [
        ("sun", "sunday"),
        ("mon", "monday"),
        ("tue", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
    ];
    let lower = name.to_ascii_lowercase();
    DAYS.iter()
        .position(|(short, long)| lower == *short || lower == *long)
        .and_then(|i| u32::try_from(i).ok())
}

/// `HH:MM` (exactly five characters, as rclone) → minutes since midnight.
fn hhmm_minutes(t: &str) -> Option<u32> {
    let b = t.as_bytes();
    if b.len() != 5
        || b[2] != b':'
        || !t[..2]
            .bytes()
            .chain(t[3..].bytes())
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let h: u32 = t[..2].parse().ok()?;
    let m: u32 = t[3..].parse().ok()?;
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// rclone's bandwidth units (see the module doc) → bytes/s, 0 = unlimited.
pub fn parse_rclone_rate(text: &str) -> Result<u64, String> {
    // `UP:DOWN`: the upload side.
    let t = text.split_once(':').map_or(text, |(up, _)| up).trim();
    if t.eq_ignore_ascii_case("off") {
        return Ok(0);
    }
    let t = t
        .strip_suffix("/s")
        .or_else(|| t.strip_suffix("/S"))
        .unwrap_or(t);
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || {
        format!(
            "`{text}` is not a rate; write a number with B, K, M or G (KiB/s without a unit, as rclone), or `off`, such as `512k` or `10M`"
        )
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit.to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('i'))
        .unwrap_or(&unit);
    let multiplier: f64 = match unit {
        "" | "k" => 1024.0,
        "b" => 1.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    if !value.is_finite() {
        return Err(bad());
    }
    // `as` saturates (and the value is clamped first): no truncation.
    #[allow(clippy::cast_possible_truncation)]
    let bytes = (value * multiplier).min(u64::MAX as f64) as u64;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;
    const M: u64 = 1024 * 1024;
    const DAY: u32 = 24 * 60;

    fn table(t: &str) -> RateTable {
        RateTable::parse(t, K).unwrap()
    }

    #[test]
    fn daily_entries_cover_every_day_and_wrap_to_the_previous_evening() {
        let t = table("08:00,2M 18:00,20M 23:00,off");
        assert_eq!(t.slots().len(), 21);
        // Wednesday 07:59: yesterday's 23:00 entry (off), next change at 08:00 to 2M.
        let wed = 3 * DAY;
        assert_eq!(
            t.at(wed + 7 * 60 + 59),
            InForce {
                rate: 0,
                next: Some((1, 2 * M))
            }
        );
        assert_eq!(t.at(wed + 8 * 60).rate, 2 * M);
        assert_eq!(t.at(wed + 18 * 60).rate, 20 * M);
        assert_eq!(t.at(wed + 23 * 60 + 30).rate, 0);
        // Sunday 00:10 goes round the week to Saturday 23:00.
        assert_eq!(t.at(10).rate, 0);
    }

    #[test]
    fn weekday_entries_follow_the_week_round() {
        // rclone's own example.
        let t = table("Mon-00:00,512 Fri-23:59,10M Sat-10:00,1M Sun-20:00,off");
        assert_eq!(t.at(DAY + 60).rate, 512 * K); // Monday 01:00
        assert_eq!(t.at(5 * DAY + 23 * 60 + 59).rate, 10 * M); // Friday 23:59
        assert_eq!(t.at(6 * DAY + 11 * 60).rate, M); // Saturday 11:00
        // Sunday 10:00: Saturday's entry still holds until Sunday 20:00.
        assert_eq!(
            t.at(10 * 60),
            InForce {
                rate: M,
                next: Some((10 * 60, 0))
            }
        );
        assert_eq!(t.at(21 * 60).rate, 0);
    }

    #[test]
    fn the_later_entry_wins_at_the_same_time_and_a_day_form_overrides_the_daily_one() {
        let t = table("08:00,1M Mon-08:00,4M");
        assert_eq!(t.at(DAY + 9 * 60).rate, 4 * M);
        assert_eq!(t.at(2 * DAY + 9 * 60).rate, M);
    }

    #[test]
    fn rclone_units() {
        for (text, want) in [
            ("512", 512 * K),
            ("512k", 512 * K),
            ("512K", 512 * K),
            ("1.5M", 3 * M / 2),
            ("10MiB", 10 * M),
            ("2Mi", 2 * M),
            ("1G", 1024 * M),
            ("4096B", 4096),
            ("off", 0),
            ("OFF", 0),
            ("0", 0),
            ("10M:100k", 10 * M),
            ("10M/s", 10 * M),
        ] {
            assert_eq!(parse_rclone_rate(text), Ok(want), "{text}");
        }
        for bad in ["", "fast", "10X", "1e3", "-5M", "M"] {
            assert!(parse_rclone_rate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_point_at_the_bad_part() {
        let e = |t: &str| RateTable::parse(t, K).unwrap_err();
        assert_eq!(e("08:00,2M 25:00,1M").offset, 9);
        assert_eq!(e("08:00,2M Mon-8:00,1M").offset, 13);
        assert_eq!(e("08:00,2M Fun-08:00,1M").offset, 9);
        assert_eq!(e("08:00,2M 09:00,fast").offset, 15);
        assert_eq!(e("08:00,2M 09:00,100B").offset, 15);
        assert_eq!(e("08:00,2M 09:00").offset, 9);
        assert_eq!(e("08:00,2M,3M").offset, 0);
        assert!(e("08:00,2M 25:00,1M").message.contains("HH:MM"));
        assert_eq!(e(" ; ").message, "the timetable is empty");
    }

    #[test]
    fn separators_and_next_change_skip_equal_rates() {
        let t = table("08:00,2M;12:00,2M  18:00,off");
        // Monday 09:00: 12:00 keeps 2M, so the next change is 18:00.
        assert_eq!(t.at(DAY + 9 * 60).next, Some((9 * 60, 0)));
        let flat = table("00:00,3M");
        assert!(flat.is_flat());
        assert_eq!(flat.at(12345).next, None);
        assert!(RateTable::flat(0) == 0);
        assert_eq!(RateTable::flat(10 * M).to_string(), "10 MiB/s");
    }
}
