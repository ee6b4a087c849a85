//! Character-set decoding of text column bytes into UTF-8, exactly as the server defines each charset.

use encoding_rs::Encoding;
use std::collections::HashMap;

/// Decodes `bytes` stored in MySQL charset `charset`. `Err` carries a reason naming the charset.
pub fn decode_text(charset: &str, bytes: &[u8]) -> Result<String, String> {
    match charset {
        "utf8mb4" | "utf8mb3" | "utf8" | "ascii" => {
            String::from_utf8(bytes.to_vec()).map_err(|e| {
                format!(
                    "invalid {charset} bytes at offset {}",
                    e.utf8_error().valid_up_to()
                )
            })
        }
        _ => {
            let label = encoding_label(charset)
                .ok_or_else(|| format!("unsupported character set `{charset}`"))?;
            let encoding = Encoding::for_label(label.as_bytes())
                .ok_or_else(|| format!("unsupported character set `{charset}`"))?;
            let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
            if had_errors {
                return Err(format!("bytes not valid in character set `{charset}`"));
            }
            Ok(text.into_owned())
        }
    }
}

/// WHATWG label for a MySQL charset. MySQL's `latin1` is Windows-1252, with the five undefined bytes
/// mapped to C1 controls, which is exactly WHATWG's windows-1252.
fn encoding_label(charset: &str) -> Option<&'static str> {
    Some(match charset {
        "latin1" => "windows-1252",
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "latin2" => "iso-8859-2",
        "latin5" => "windows-1254",
        "latin7" => "iso-8859-13",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "cp866" => "ibm866",
        "gbk" | "gb2312" => "gbk",
        "gb18030" => "gb18030",
        "big5" => "big5",
        "sjis" | "cp932" => "shift_jis",
        "ujis" | "eucjpms" => "euc-jp",
        "euckr" => "euc-kr",
        "utf16" | "ucs2" => "utf-16be",
        "utf16le" => "utf-16le",
        _ => return None,
    })
}

/// Collation id → charset name. Loaded from the server's information_schema when connected; the built-in
/// table covers the common ids for offline decoding.
#[derive(Debug, Clone)]
pub struct CollationMap(HashMap<u16, String>);

impl CollationMap {
    pub fn from_pairs(pairs: impl IntoIterator<Item = (u16, String)>) -> Self {
        let mut map = Self::builtin().0;
        map.extend(pairs);
        CollationMap(map)
    }

    pub fn builtin() -> Self {
        let mut m = HashMap::new();
        for id in [5u16, 8, 15, 31, 47, 48, 49, 94] {
            m.insert(id, "latin1".to_string());
        }
        for id in (33u16..=33).chain([83]).chain(192..=215).chain([223, 76]) {
            m.insert(id, "utf8mb3".to_string());
        }
        for id in [45u16, 46].into_iter().chain(224..=247).chain(255..=323) {
            m.insert(id, "utf8mb4".to_string());
        }
        m.insert(63, "binary".to_string());
        m.insert(11, "ascii".to_string());
        m.insert(65, "ascii".to_string());
        CollationMap(m)
    }

    pub fn charset(&self, collation_id: u16) -> Option<&str> {
        self.0.get(&collation_id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_is_cp1252() {
        assert_eq!(decode_text("latin1", &[0x80, b'a', 0xe9]).unwrap(), "€aé");
        assert_eq!(decode_text("latin1", &[0x81]).unwrap(), "\u{81}");
    }

    #[test]
    fn utf8mb4_four_byte_and_invalid() {
        assert_eq!(decode_text("utf8mb4", "𝄞😀".as_bytes()).unwrap(), "𝄞😀");
        assert!(decode_text("utf8mb4", &[0xff]).is_err());
        assert!(decode_text("klingon", b"x")
            .unwrap_err()
            .contains("klingon"));
    }
}
