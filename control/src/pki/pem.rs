//! PEM in and out: reading every block of a PEM text (so callers can insist on exactly one), and
//! encoding DER as PEM with 64-column lines and LF line ends (RFC 7468, by the `pem` crate).

use x509_parser::pem::Pem;

/// One decoded PEM block.
pub(crate) struct Block {
    pub label: String,
    pub der: Vec<u8>,
}

/// Every PEM block in `text`, in order. Text outside blocks is ignored; a block that is cut off,
/// has a bad header or bad base64 is an error.
pub(crate) fn blocks(text: &str) -> Result<Vec<Block>, String> {
    Pem::iter_from_buffer(text.as_bytes())
        .map(|block| {
            block
                .map(|pem| Block {
                    label: pem.label,
                    der: pem.contents,
                })
                .map_err(|e| format!("bad PEM ({e})"))
        })
        .collect()
}

/// The single block of `text`, whose label must be one of `labels`; `what` names it in errors.
pub(crate) fn single(text: &str, labels: &[&str], what: &str) -> Result<Block, String> {
    let mut all = blocks(text)?;
    match all.len() {
        0 => Err(format!("no PEM block found where the {what} was expected")),
        1 => {
            let block = all.remove(0);
            if labels.contains(&block.label.as_str()) {
                Ok(block)
            } else {
                Err(format!(
                    "the {what} PEM block is labelled {:?}, expected {:?}",
                    block.label, labels[0]
                ))
            }
        }
        n => Err(format!(
            "{n} PEM blocks found where one {what} was expected"
        )),
    }
}

/// `der` as a PEM block labelled `label`, ending in a newline.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let config = ::pem::EncodeConfig::new().set_line_ending(::pem::LineEnding::LF);
    ::pem::encode_config(&::pem::Pem::new(label, der), config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_round_trips_every_padding_length() {
        for len in [0usize, 1, 2, 3, 47, 48, 49, 200] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let text = encode("CERTIFICATE", &der);
            assert!(text.lines().all(|l| l.len() <= 64));
            let block = single(&text, &["CERTIFICATE"], "certificate").unwrap();
            assert_eq!(block.der, der, "length {len}");
        }
    }

    #[test]
    fn encode_matches_a_known_vector() {
        assert_eq!(
            encode("X", b"foobar"),
            "-----BEGIN X-----\nZm9vYmFy\n-----END X-----\n"
        );
        assert_eq!(
            encode("X", b"fo"),
            "-----BEGIN X-----\nZm8=\n-----END X-----\n"
        );
    }

    #[test]
    fn single_refuses_none_two_and_wrong_label() {
        let one = encode("CERTIFICATE", b"abc");
        assert!(single("junk", &["CERTIFICATE"], "c").is_err());
        assert!(single(&format!("{one}{one}"), &["CERTIFICATE"], "c").is_err());
        assert!(single(&one, &["PRIVATE KEY"], "key").is_err());
    }
}
