//! A run's output as the page shows it: the colours and bold of ANSI SGR codes (`\x1b[31m`) become
//! spans with a class, every other escape or control sequence is dropped, and the text itself is
//! left to the template to escape. Parsing is `anstyle-parse`'s VT state machine, which only the
//! bytes around plain text go through: runs of plain ASCII between them are copied whole.

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
    /// The last byte fed printed a character or ended a CSI or ESC sequence, so the parser is in
    /// its ground state. (It can get there without either, e.g. at the end of an OSC string; then
    /// the next plain byte it is fed prints and says so.)
    grounded: bool,
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

    /// Plain bytes ([`is_plain`]) read in the ground state: the text they print, as it is.
    fn push_plain(&mut self, bytes: &[u8]) {
        // Plain bytes are ASCII, so always UTF-8.
        if let Ok(text) = std::str::from_utf8(bytes) {
            self.current.push_str(text);
        }
    }
}

impl Perform for Collector {
    fn print(&mut self, c: char) {
        self.grounded = true;
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
        self.grounded = true;
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

    fn esc_dispatch(&mut self, _intermediates: &[u8], _ignore: bool, _byte: u8) {
        self.grounded = true;
    }
}

/// Bytes that the parser, in its ground state, turns into text as they are: printable ASCII and
/// DEL (which it prints too), line ends and tabs (which [`Collector`] keeps).
fn is_plain(byte: u8) -> bool {
    matches!(byte, 0x20..=0x7f | b'\n' | b'\t')
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
    // Most output is plain text. In the ground state a run of plain bytes is copied whole; the
    // other bytes (escape sequences, other controls, non-ASCII characters) go through the parser
    // one by one, as every byte once did (the tests compare both ways on mixed input).
    let mut ground = true;
    for &(start, bytes) in pieces {
        // The first byte of this piece to keep (a plain byte is a character of its own).
        let keep_from = usize::try_from(from.saturating_sub(start)).unwrap_or(usize::MAX);
        let mut i = 0;
        while let Some(&byte) = bytes.get(i) {
            if ground {
                let end = bytes[i..]
                    .iter()
                    .position(|b| !is_plain(*b))
                    .map_or(bytes.len(), |n| i + n);
                if end > i {
                    collector.push_plain(&bytes[keep_from.clamp(i, end)..end]);
                    i = end;
                    continue;
                }
            }
            collector.keep = i >= keep_from;
            collector.grounded = false;
            parser.advance(&mut collector, byte);
            ground = collector.grounded;
            i += 1;
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

    /// [`segments_since`] as it was before plain runs were copied whole: every byte through the
    /// parser.
    fn segments_since_bytewise(pieces: &[(u64, &[u8])], from: u64) -> Vec<Segment> {
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

    #[test]
    fn plain_runs_copied_whole_read_as_every_byte_parsed() {
        // Text, SGR and other sequences (CSI, OSC ended by BEL or ST, DCS, APC, one with too many
        // parameters), controls (CAN aborts a sequence), DEL, UTF-8 (C1 code points included),
        // invalid and cut UTF-8.
        let parts: [&[u8]; 28] = [
            b"plain text ",
            b"<b>&amp;</b>\n",
            b"\x1b[31m",
            b"\x1b[1;92m",
            b"\x1b[0m",
            b"\x1b[m",
            b"\x1b[38;5;9m",
            b"\x1b[38;2;1;2;3m",
            b"\x1b[2K\x1b[1G",
            b"\x1b[?25l",
            b"\x1b]0;title\x07",
            b"\x1b]8;;http://x/\x1b\\",
            b"\x1bP1$r\x1b\\",
            b"\x1b_apc\x1b\\",
            b"\x1b[1;2;3;4;5;6;7;8;9;10;11;12;13;14;15;16;17;18;19;20;21;22;23;24;25;26;27;28;29;30;31;32;33m",
            b"\x1b[31\x18m",
            b"\x1b(B",
            b"\x1b",
            b"\x1b[",
            "é 日本 \u{9b}31m \u{85}".as_bytes(),
            b"\x7f",
            b"\r\n\t",
            b"\x07\x08",
            b"\xff\xfe",
            b"\xc3",
            b"\xe6\x97",
            b"\x9b31m",
            b"x",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            usize::try_from(seed % n as u64).unwrap_or(0)
        };
        for case in 0..3_000 {
            let mut stream = Vec::new();
            for _ in 0..next(40) {
                stream.extend_from_slice(parts[next(parts.len())]);
            }
            // Cut into pieces at any byte, some with a gap in the positions (bytes a cap dropped).
            let mut pieces = Vec::new();
            let (mut at, mut position) = (0, 0u64);
            while at < stream.len() {
                let len = (1 + next(60)).min(stream.len() - at);
                pieces.push((position, &stream[at..at + len]));
                position += len as u64 + if next(4) == 0 { next(50) as u64 } else { 0 };
                at += len;
            }
            let from = next(position as usize + 2) as u64;
            assert_eq!(
                segments_since(&pieces, from),
                segments_since_bytewise(&pieces, from),
                "case {case}: {:?} from {from}",
                String::from_utf8_lossy(&stream)
            );
        }
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
