//! A run's output as the page shows it: the colours and bold of ANSI SGR codes (`\x1b[31m`) become
//! spans with a class, every other escape or control sequence is dropped, and the text itself is
//! left to the template to escape. Parsing is `anstyle-parse`'s VT state machine.

use anstyle_parse::{DefaultCharAccumulator, Params, Parser, Perform};
use serde::Serialize;

/// A run of text in one style.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// CSS classes (`ansi-fg-1 ansi-bold`), empty for plain text.
    pub class: String,
    pub text: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Style {
    /// 0–15: the basic and bright colours.
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    dim: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn class(self) -> String {
        let mut classes = Vec::new();
        if let Some(fg) = self.fg {
            classes.push(format!("ansi-fg-{fg}"));
        }
        if let Some(bg) = self.bg {
            classes.push(format!("ansi-bg-{bg}"));
        }
        for (on, name) in [
            (self.bold, "ansi-bold"),
            (self.dim, "ansi-dim"),
            (self.italic, "ansi-italic"),
            (self.underline, "ansi-underline"),
        ] {
            if on {
                classes.push(name.to_owned());
            }
        }
        classes.join(" ")
    }

    /// Applies one SGR sequence. 256-colour and true-colour codes are read (so their numbers are
    /// not taken for other codes) but shown in the default colour unless they name one of the 16.
    fn apply(&mut self, params: &Params) {
        let mut codes = params.iter().flat_map(|p| p.iter().copied()).peekable();
        if codes.peek().is_none() {
            *self = Self::default();
        }
        while let Some(code) = codes.next() {
            match code {
                0 => *self = Self::default(),
                1 => self.bold = true,
                2 => self.dim = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => (self.bold, self.dim) = (false, false),
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some(colour(code - 30)),
                90..=97 => self.fg = Some(colour(code - 90 + 8)),
                39 => self.fg = None,
                40..=47 => self.bg = Some(colour(code - 40)),
                100..=107 => self.bg = Some(colour(code - 100 + 8)),
                49 => self.bg = None,
                38 | 48 => {
                    let picked = match codes.next() {
                        Some(5) => codes.next().filter(|n| *n < 16).map(colour),
                        Some(2) => {
                            codes.next();
                            codes.next();
                            codes.next();
                            None
                        }
                        _ => None,
                    };
                    if code == 38 {
                        self.fg = picked;
                    } else {
                        self.bg = picked;
                    }
                }
                _ => {}
            }
        }
    }
}

fn colour(n: u16) -> u8 {
    u8::try_from(n).unwrap_or(0)
}

#[derive(Default)]
struct Collector {
    style: Style,
    segments: Vec<Segment>,
    current: String,
    /// Text is kept only while this is true; styles are followed throughout.
    keep: bool,
}

impl Collector {
    fn flush(&mut self) {
        if !self.current.is_empty() {
            self.segments.push(Segment {
                class: self.style.class(),
                text: std::mem::take(&mut self.current),
            });
        }
    }
}

impl Perform for Collector {
    fn print(&mut self, c: char) {
        if self.keep {
            self.current.push(c);
        }
    }

    fn execute(&mut self, byte: u8) {
        // Line ends and tabs are text; other C0 controls (bell, backspace…) are dropped.
        if self.keep && matches!(byte, b'\n' | b'\t') {
            self.current.push(char::from(byte));
        }
    }

    fn csi_dispatch(&mut self, params: &Params, intermediates: &[u8], ignore: bool, action: u8) {
        if action == b'm' && intermediates.is_empty() && !ignore {
            let before = self.style;
            let mut after = before;
            after.apply(params);
            if after != before {
                self.flush();
                self.style = after;
            }
        }
    }
}

/// `text` cut into styled segments; escape sequences are gone, the text is not escaped.
pub fn segments(text: &str) -> Vec<Segment> {
    segments_since(&[(0, text.as_bytes())], 0)
}

/// The segments of a stream of bytes given in pieces, each with the position of its first byte,
/// keeping only the text of bytes at `from` or later: styles set before `from` still apply, and a
/// character or escape sequence cut at `from` is read whole (a character counts where it ends).
/// Bytes that are not UTF-8 read as U+FFFD.
pub fn segments_since(pieces: &[(u64, &[u8])], from: u64) -> Vec<Segment> {
    let mut parser = Parser::<DefaultCharAccumulator>::new();
    let mut collector = Collector::default();
    for (start, bytes) in pieces {
        for (i, byte) in bytes.iter().enumerate() {
            collector.keep = start + i as u64 >= from;
            parser.advance(&mut collector, *byte);
        }
    }
    collector.flush();
    merge(collector.segments)
}

/// Neighbours of one style joined, so a page holds as few spans as the colours need.
fn merge(segments: Vec<Segment>) -> Vec<Segment> {
    let mut out: Vec<Segment> = Vec::with_capacity(segments.len());
    for s in segments {
        match out.last_mut() {
            Some(last) if last.class == s.class => last.text.push_str(&s.text),
            _ => out.push(s),
        }
    }
    out
}

/// `text` without any escape sequence (for the plain-text download's consumers and tests).
pub fn strip(text: &str) -> String {
    segments(text).into_iter().map(|s| s.text).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(class: &str, text: &str) -> Segment {
        Segment {
            class: class.to_owned(),
            text: text.to_owned(),
        }
    }

    #[test]
    fn colour_codes_become_classes() {
        assert_eq!(
            segments("ok \x1b[31mfailed\x1b[0m done\n"),
            [seg("", "ok "), seg("ansi-fg-1", "failed"), seg("", " done\n")]
        );
        assert_eq!(
            segments("\x1b[1;92mbright\x1b[22m still green\x1b[m"),
            [
                seg("ansi-fg-10 ansi-bold", "bright"),
                seg("ansi-fg-10", " still green")
            ]
        );
    }

    #[test]
    fn other_sequences_and_controls_are_dropped() {
        assert_eq!(strip("a\x1b[2K\x1b[1Gb\x07c\x1b]0;title\x07d"), "abcd");
        assert_eq!(strip("x\x1b[38;2;255;0;0my"), "xy");
        assert_eq!(
            segments("\x1b[38;5;9mred\x1b[38;5;200mpink"),
            [seg("ansi-fg-9", "red"), seg("", "pink")]
        );
    }

    #[test]
    fn a_stream_read_from_an_offset_keeps_the_style_and_whole_characters() {
        let text = "plain \x1b[32mgreen é\n".as_bytes();
        // From inside the escape sequence: the style still applies to what follows.
        assert_eq!(segments_since(&[(0, text)], 8), [seg("ansi-fg-2", "green é\n")]);
        // From the second byte of "é": the character is new (it ends there).
        let e = "plain \x1b[32mgreen ".len() as u64;
        assert_eq!(segments_since(&[(0, text)], e + 1), [seg("ansi-fg-2", "é\n")]);
        // Pieces with a gap between them read as one stream.
        assert_eq!(
            segments_since(&[(0, b"\x1b[31mab"), (100, b"cd")], 0),
            [seg("ansi-fg-1", "abcd")]
        );
        assert!(segments_since(&[(0, text)], text.len() as u64).is_empty());
    }

    #[test]
    fn markup_stays_text_for_the_template_to_escape() {
        assert_eq!(
            segments("\x1b[33m<script>alert(1)</script>"),
            [seg("ansi-fg-3", "<script>alert(1)</script>")]
        );
        assert_eq!(strip("  indented\ttab\n"), "  indented\ttab\n");
    }
}
