//! Bech32 (BIP 173) as age writes its keys (`age1...`, `AGE-SECRET-KEY-1...`): no length
//! limit, one case throughout. Encoding and decoding only; a typo fails the checksum.

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn polymod(values: impl Iterator<Item = u8>) -> u32 {
    const GEN: [u32; 5] = [0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3];
    let mut chk = 1u32;
    for v in values {
        let top = chk >> 25;
        chk = ((chk & 0x1ff_ffff) << 5) ^ u32::from(v);
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    }
    chk
}

fn hrp_expand(hrp: &str) -> Vec<u8> {
    let b = hrp.as_bytes();
    b.iter()
        .map(|c| c >> 5)
        .chain([0])
        .chain(b.iter().map(|c| c & 31))
        .collect()
}

/// Regroups bits; `pad` adds zero bits at the end (encoding), else they must be zero.
fn convert(data: &[u8], from: u32, to: u32, pad: bool) -> Option<Vec<u8>> {
    let (mut acc, mut bits, mut out) = (0u32, 0u32, Vec::new());
    let max = (1u32 << to) - 1;
    for &v in data {
        acc = (acc << from) | u32::from(v);
        bits += from;
        while bits >= to {
            bits -= to;
            out.push(((acc >> bits) & max) as u8);
        }
    }
    if pad {
        if bits > 0 {
            out.push(((acc << (to - bits)) & max) as u8);
        }
    } else if bits >= from || (acc << (to - bits)) & max != 0 {
        return None;
    }
    Some(out)
}

pub fn encode(hrp: &str, data: &[u8]) -> String {
    let mut values = convert(data, 8, 5, true).unwrap_or_default();
    let expanded = hrp_expand(hrp);
    let pm = polymod(expanded.iter().chain(&values).copied().chain([0; 6])) ^ 1;
    values.extend((0..6).map(|i| ((pm >> (5 * (5 - i))) & 31) as u8));
    let mut out = format!("{hrp}1");
    out.extend(values.iter().map(|&v| char::from(CHARSET[usize::from(v)])));
    out
}

/// (hrp in lowercase, data).
pub fn decode(text: &str) -> Result<(String, Vec<u8>), String> {
    let has_upper = text.bytes().any(|b| b.is_ascii_uppercase());
    if has_upper && text.bytes().any(|b| b.is_ascii_lowercase()) {
        return Err("mixed case".into());
    }
    let text = text.to_ascii_lowercase();
    let sep = text.rfind('1').ok_or("no separator '1'")?;
    let (hrp, rest) = (&text[..sep], &text.as_bytes()[sep + 1..]);
    if hrp.is_empty() || rest.len() < 6 {
        return Err("too short".into());
    }
    let values = rest
        .iter()
        .map(|c| CHARSET.iter().position(|x| x == c).map(|p| p as u8))
        .collect::<Option<Vec<u8>>>()
        .ok_or("a character outside the Bech32 alphabet")?;
    if polymod(hrp_expand(hrp).into_iter().chain(values.iter().copied())) != 1 {
        return Err("bad checksum (a typo?)".into());
    }
    let data = convert(&values[..values.len() - 6], 5, 8, false).ok_or("bad padding")?;
    Ok((hrp.to_owned(), data))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bip_173_vectors() {
        assert_eq!(decode("A12UEL5L").unwrap(), ("a".to_owned(), vec![]));
        assert_eq!(encode("a", &[]), "a12uel5l");
        // The 32 alphabet values in order are 160 bits: 20 bytes.
        let (hrp, data) = decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw").unwrap();
        assert_eq!(hrp, "abcdef");
        assert_eq!(
            encode(&hrp, &data),
            "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw"
        );
        for bad in ["A12uEL5L", "a12uel5m", "a1", "x1b4n0q5v", "pzry9x0s0muk"] {
            assert!(decode(bad).is_err(), "{bad}");
        }
    }
}
