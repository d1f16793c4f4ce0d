//! PEM in and out: reading every block of a PEM text (so callers can insist on exactly one), and
//! encoding DER as PEM with 64-column lines (RFC 7468).

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
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, byte)| n | u32::from(*byte) << (16 - 8 * i));
        for i in 0..4 {
            b64.push(if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        out.extend(line.iter().map(|&c| char::from(c)));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
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
