//! Plain text in any encoding luodi detects.

use crate::readers::{decode_text, paragraphs, ReadOutput};
use crate::{Extracted, ReadError};

pub(crate) fn read(bytes: &[u8]) -> Result<ReadOutput, ReadError> {
    let (text, enc) = decode_text(bytes)?;
    let blocks = paragraphs(&text, 1);
    // a short first line ending without punctuation is the title
    let title = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .filter(|l| l.chars().count() <= 40 && !l.ends_with(['。', '.', '，', ',', '；', ';']))
        .map(str::to_owned);
    Ok(ReadOutput {
        documents: vec![Extracted {
            title,
            blocks,
            ..Default::default()
        }],
        warnings: Vec::new(),
        encoding: Some(enc),
    })
}
