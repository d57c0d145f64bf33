//! `--config FILE`: a long command line kept in a file. The file holds the same flags, in the
//! same order and with the same names, as the command line it stands for; its words take the
//! place of `--config FILE`. Words are split at blanks and line ends; single or double quotes
//! keep a phrase in one word, and `#` starts a comment that runs to the end of the line.

use std::ffi::OsString;

/// Largest file read: a command line, not a data set.
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// `args` with every `--config FILE` (or `--config=FILE`) replaced by the file's words.
pub(super) fn expand(args: Vec<OsString>) -> Result<Vec<OsString>, String> {
    let mut expanded = Vec::with_capacity(args.len());
    let mut tokens = args.into_iter();
    while let Some(token) = tokens.next() {
        let text = token.to_string_lossy();
        let path = if text == "--config" {
            match tokens.next() {
                Some(path) => path.to_string_lossy().into_owned(),
                None => return Err("--config needs a FILE".into()),
            }
        } else if let Some(path) = text.strip_prefix("--config=") {
            path.to_owned()
        } else {
            expanded.push(token);
            continue;
        };
        let words = read(&path)?;
        if words
            .iter()
            .any(|w| w == "--config" || w.starts_with("--config="))
        {
            return Err(format!(
                "--config {path}: a config file cannot name another one"
            ));
        }
        expanded.extend(words.into_iter().map(OsString::from));
    }
    Ok(expanded)
}

fn read(path: &str) -> Result<Vec<String>, String> {
    let fail = |why: String| format!("--config {path}: {why}");
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| fail(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(fail(format!("larger than {MAX_CONFIG_BYTES} bytes")));
    }
    words(&text).map_err(fail)
}

/// The words of a config file's text.
fn words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut word = String::new();
        let mut started = false;
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match (quote, c) {
                (Some(open), c) if c == open => quote = None,
                (Some(_), c) => word.push(c),
                (None, '"' | '\'') => {
                    quote = Some(c);
                    started = true;
                }
                (None, '#') if !started => break,
                (None, c) if c.is_whitespace() => {
                    if started {
                        words.push(std::mem::take(&mut word));
                        started = false;
                    }
                }
                (None, c) => {
                    word.push(c);
                    started = true;
                }
            }
        }
        if quote.is_some() {
            return Err(format!("line {}: a quote is not closed", number + 1));
        }
        if started {
            words.push(word);
        }
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_at_blanks_keep_quoted_phrases_and_skip_comments() {
        let text = "# a comment\n--listen :8080   openai --model m # trailing\n\
                    --route /x --system-prompt \"Be brief, please.\" --stop-key '[END]' demo\n";
        assert_eq!(
            words(text).expect("words"),
            [
                "--listen",
                ":8080",
                "openai",
                "--model",
                "m",
                "--route",
                "/x",
                "--system-prompt",
                "Be brief, please.",
                "--stop-key",
                "[END]",
                "demo"
            ]
        );
        assert_eq!(words("a\"#b\"").expect("words"), ["a#b"]);
        assert!(words("--system-prompt \"open").is_err());
    }
}
