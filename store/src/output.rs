//! The output cap: a run's stdout and stderr become text that always fits a record. Big output
//! keeps its head and its tail with one line saying how much was cut between them; bytes that are
//! not UTF-8 are replaced (never an error), and so are NUL bytes, which PostgreSQL TEXT refuses.

/// Default cap on stored output: 1 MiB of the original bytes (512 KiB head + 512 KiB tail).
pub const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;

/// Output ready to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CappedOutput {
    /// What is stored: valid UTF-8 without NUL, with the cut marked by one line.
    pub text: String,
    /// Size of the output as the run produced it.
    pub original_bytes: u64,
    /// How many of those bytes were cut (0 when it fit).
    pub truncated_bytes: u64,
}

/// The mark of a line Job Trigger Portal adds to a run's output itself (why it stopped the run,
/// why it never started), in both modes.
pub const NOTE_PREFIX: &str = "[jtp] ";

/// `output` with the note `note` after it, on a line of its own.
pub fn with_note(output: &str, note: &str) -> String {
    let sep = if output.is_empty() || output.ends_with('\n') {
        ""
    } else {
        "\n"
    };
    format!("{output}{sep}{NOTE_PREFIX}{note}\n")
}

/// Caps `bytes` to at most `cap` bytes of the original (half from the head, half from the tail,
/// moved to UTF-8 character boundaries) plus one marker line. Invalid UTF-8 and NUL bytes become
/// U+FFFD, so the text can be up to 3 bytes per replaced byte longer than what it replaces.
pub fn cap_output(bytes: &[u8], cap: usize) -> CappedOutput {
    let original_bytes = bytes.len() as u64;
    if bytes.len() <= cap {
        return CappedOutput {
            text: clean(bytes),
            original_bytes,
            truncated_bytes: 0,
        };
    }
    let head_end = char_boundary_back(bytes, cap / 2);
    let tail_start = char_boundary_forward(bytes, bytes.len() - (cap - cap / 2));
    join_cut(&bytes[..head_end], &bytes[tail_start..], original_bytes, cap)
}

/// Caps output that was already cut while it was captured: `head` and `tail` are what the
/// capture kept and `omitted` how many bytes it dropped between them (a runner that streams a
/// script's output keeps only this much). The result is what [`cap_output`] gives for the whole.
pub fn cap_output_parts(head: &[u8], tail: &[u8], omitted: u64, cap: usize) -> CappedOutput {
    if omitted == 0 {
        return cap_output(&[head, tail].concat(), cap);
    }
    let original_bytes = head.len() as u64 + tail.len() as u64 + omitted;
    let head = &head[..char_boundary_back(head, (cap / 2).min(head.len()))];
    let tail = &tail[char_boundary_forward(tail, tail.len().saturating_sub(cap - cap / 2))..];
    join_cut(head, tail, original_bytes, cap)
}

/// The head, one line saying how much was cut, and the tail.
fn join_cut(head: &[u8], tail: &[u8], original_bytes: u64, cap: usize) -> CappedOutput {
    let truncated = original_bytes - head.len() as u64 - tail.len() as u64;
    let mut text = clean(head);
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&format!(
        "[jtp: {truncated} bytes of output cut here (cap {cap} bytes)]\n"
    ));
    text.push_str(&clean(tail));
    CappedOutput {
        text,
        original_bytes,
        truncated_bytes: truncated,
    }
}

/// Lossy UTF-8 with NUL replaced too.
fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text.into_owned()
    }
}

fn is_continuation(byte: u8) -> bool {
    byte & 0b1100_0000 == 0b1000_0000
}

/// Moves a cut at `at` back (at most 3 bytes) so it does not split a UTF-8 sequence.
fn char_boundary_back(bytes: &[u8], mut at: usize) -> usize {
    let floor = at.saturating_sub(3);
    while at > floor && at < bytes.len() && is_continuation(bytes[at]) {
        at -= 1;
    }
    at
}

/// Moves a cut at `at` forward (at most 3 bytes) so it does not split a UTF-8 sequence.
fn char_boundary_forward(bytes: &[u8], mut at: usize) -> usize {
    let ceiling = (at + 3).min(bytes.len());
    while at < ceiling && is_continuation(bytes[at]) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_output_is_kept_whole() {
        let out = cap_output(b"hello\nworld\n", 100);
        assert_eq!(
            out,
            CappedOutput {
                text: "hello\nworld\n".into(),
                original_bytes: 12,
                truncated_bytes: 0
            }
        );
        assert_eq!(cap_output(b"", 0).text, "");
    }

    #[test]
    fn big_output_keeps_head_and_tail_and_says_what_was_cut() {
        let mut bytes = b"FIRST LINE\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
        bytes.extend_from_slice(b"\nLAST LINE\n");
        let out = cap_output(&bytes, DEFAULT_OUTPUT_CAP);
        assert!(out.text.starts_with("FIRST LINE\n"));
        assert!(out.text.ends_with("\nLAST LINE\n"));
        assert_eq!(out.original_bytes, bytes.len() as u64);
        assert_eq!(out.truncated_bytes, (bytes.len() - DEFAULT_OUTPUT_CAP) as u64);
        let markers: Vec<&str> = out.text.lines().filter(|l| l.starts_with("[jtp: ")).collect();
        assert_eq!(
            markers,
            [format!(
                "[jtp: {} bytes of output cut here (cap 1048576 bytes)]",
                out.truncated_bytes
            )]
        );
        assert!(out.text.len() <= DEFAULT_OUTPUT_CAP + 80);
    }

    #[test]
    fn a_note_is_a_line_of_its_own_after_the_output() {
        assert_eq!(with_note("", "stopped: x"), "[jtp] stopped: x\n");
        assert_eq!(with_note("log\n", "stopped: x"), "log\n[jtp] stopped: x\n");
        assert_eq!(with_note("partial", "stopped: x"), "partial\n[jtp] stopped: x\n");
    }

    #[test]
    fn invalid_utf8_and_nul_are_replaced() {
        let out = cap_output(b"ok \xff\xfe bad \0 nul", 1000);
        assert_eq!(out.text, "ok \u{FFFD}\u{FFFD} bad \u{FFFD} nul");
        assert_eq!(out.original_bytes, 15);
    }

    #[test]
    fn cuts_never_split_a_character() {
        // 'é' is two bytes: every cut position must land between characters.
        let bytes = "é".repeat(1000).into_bytes();
        for cap in [0, 1, 2, 3, 7, 100, 1999] {
            let out = cap_output(&bytes, cap);
            assert!(!out.text.contains('\u{FFFD}'), "cap {cap}: {}", out.text);
            let kept = out
                .text
                .lines()
                .filter(|l| !l.starts_with("[jtp: "))
                .map(str::len)
                .sum::<usize>() as u64;
            assert_eq!(kept + out.truncated_bytes, out.original_bytes, "cap {cap}");
        }
    }
}
