//! Who is on the other end of a TLS connection: the names in the client
//! certificate that rustls already verified against `tls.client_ca_file`.
//! Only the subject CN and the DNS, URI and e-mail subject alternative
//! names are read, with a small DER walker (the certificate's signature
//! and chain were checked by the verifier; this only reads fields).

use rustls_pki_types::CertificateDer;

/// The names a verified client certificate carries (empty when the
/// connection is plaintext or the client sent no certificate).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    pub names: Vec<String>,
}

impl PeerIdentity {
    /// From the peer chain rustls reports (leaf first).
    pub fn from_chain(chain: Option<&[CertificateDer<'_>]>) -> PeerIdentity {
        let names = chain
            .and_then(|c| c.first())
            .map(|leaf| certificate_names(leaf.as_ref()))
            .unwrap_or_default();
        PeerIdentity { names }
    }
}

const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element: (tag, contents, what follows).
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = match first {
        n if n < 0x80 => (n as usize, rest),
        0x81..=0x84 => {
            let k = (first & 0x7f) as usize;
            if rest.len() < k {
                return None;
            }
            let len = rest[..k].iter().fold(0usize, |a, &b| (a << 8) | b as usize);
            (len, &rest[k..])
        }
        _ => return None,
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The elements of a constructed value, in order (stops at bad DER).
fn children(mut input: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (tag, value, rest) = tlv(input)?;
        input = rest;
        Some((tag, value))
    })
}

/// Subject CN(s) first, then DNS, URI and e-mail SANs. Malformed input
/// yields what could be read (possibly nothing), never a panic.
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let mut names = Vec::new();
    let Some((0x30, cert, _)) = tlv(der) else {
        return names;
    };
    let Some((0x30, tbs, _)) = tlv(cert) else {
        return names;
    };
    let mut fields: Vec<(u8, &[u8])> = children(tbs).collect();
    if fields.first().is_some_and(|(t, _)| *t == 0xa0) {
        fields.remove(0); // [0] version
    }
    // serial, signature, issuer, validity, subject, spki, then optionals.
    if let Some((0x30, subject)) = fields.get(4) {
        for (_, rdn) in children(subject) {
            for (_, atv) in children(rdn) {
                let mut parts = children(atv);
                if let (Some((0x06, oid)), Some((_, value))) = (parts.next(), parts.next()) {
                    if oid == OID_CN {
                        if let Ok(s) = std::str::from_utf8(value) {
                            names.push(s.to_string());
                        }
                    }
                }
            }
        }
    }
    let extensions = fields.iter().find(|(t, _)| *t == 0xa3);
    if let Some((_, wrapped)) = extensions {
        let Some((0x30, list, _)) = tlv(wrapped) else {
            return names;
        };
        for (_, ext) in children(list) {
            let mut parts = children(ext);
            if !matches!(parts.next(), Some((0x06, oid)) if oid == OID_SAN) {
                continue;
            }
            // An optional `critical` BOOLEAN, then the OCTET STRING.
            let value = parts.find(|(t, _)| *t == 0x04).map(|(_, v)| v);
            let Some((0x30, general_names, _)) = value.and_then(tlv) else {
                continue;
            };
            for (tag, v) in children(general_names) {
                // [1] rfc822Name, [2] dNSName, [6] URI (IA5String, implicit).
                if matches!(tag, 0x81 | 0x82 | 0x86) {
                    if let Ok(s) = std::str::from_utf8(v) {
                        names.push(s.to_string());
                    }
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cn_and_sans_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec![
            "agent-1.example".to_string(),
            "spiffe://example/agent-1".to_string(),
        ])
        .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "agent-1");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let names = certificate_names(cert.der());
        assert_eq!(
            names,
            vec!["agent-1", "agent-1.example", "spiffe://example/agent-1"]
        );
    }

    #[test]
    fn malformed_input_yields_nothing() {
        assert!(certificate_names(b"").is_empty());
        assert!(certificate_names(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(certificate_names(&[0x30, 0x03, 0x30, 0x01, 0x02]).is_empty());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["x".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        for cut in [1, 10, der.len() / 2, der.len() - 1] {
            let _ = certificate_names(&der[..cut]); // must not panic
        }
        assert_eq!(PeerIdentity::from_chain(None), PeerIdentity::default());
    }
}
