//! A certificate's subject as an RFC 4514 string, as the CA issued it: what the inventory
//! records at Notify and the certificate search matches (issue 18, docs/decisions.md #16).

use openssl::nid::Nid;
use openssl::x509::{X509, X509NameRef};

/// RFC 4514 2.1: the last RDN first, `CN=dev-1,O=Contoso`. Attribute types are OpenSSL's short
/// names (`CN`, `O`, `serialNumber`), a dotted OID where it has none; a value that is not a
/// string is `#` and its hex (2.4). Each attribute is its own RDN, as the CA encodes them
/// (a multi-valued RDN would be shown as separate ones).
pub fn rfc4514(name: &X509NameRef) -> String {
    let mut rdns: Vec<String> = name
        .entries()
        .map(|e| {
            let obj = e.object();
            let attr = match obj.nid() {
                Nid::UNDEF => obj.to_string(),
                nid => nid
                    .short_name()
                    .map(str::to_owned)
                    .unwrap_or_else(|_| obj.to_string()),
            };
            let value = match e.data().to_string() {
                Ok(s) => escape(&s),
                Err(_) => format!("#{}", hex::encode(e.data().as_slice())),
            };
            format!("{attr}={value}")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// The subject of a DER certificate, or None if it does not parse.
pub fn of_der(der: &[u8]) -> Option<String> {
    X509::from_der(der).ok().map(|c| rfc4514(c.subject_name()))
}

/// RFC 4514 2.4: `"+,;<>\` and NUL escaped everywhere, a leading space or `#` and a trailing
/// space escaped.
fn escape(v: &str) -> String {
    let last = v.chars().count().saturating_sub(1);
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use openssl::x509::X509Name;

    #[test]
    fn last_rdn_first_with_escapes() {
        let mut b = X509Name::builder().unwrap();
        b.append_entry_by_text("C", "US").unwrap();
        b.append_entry_by_text("O", " Contoso, Ltd").unwrap();
        b.append_entry_by_text("CN", "#dev+1; <a> \"b\" ").unwrap();
        let name = b.build();
        assert_eq!(
            rfc4514(&name),
            r#"CN=\#dev\+1\; \<a\> \"b\"\ ,O=\ Contoso\, Ltd,C=US"#
        );
    }
}
